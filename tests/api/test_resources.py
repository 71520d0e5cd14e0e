"""The resources' behaviour: actions call the services, lists paginate by cursor with a
constant number of queries, filters narrow, secrets stay hidden."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deliveries.models import Delivery, DeliveryStatus
from endpoints.models import Endpoint
from events.models import Event, EventType
from events.services import publish
from tests.factories import make_endpoint

pytestmark = pytest.mark.django_db


def test_cursor_pages_are_stable_while_events_arrive(partner, partner_api, event_types):
    make_endpoint(partner)
    first_ids = [publish("order.paid", {"n": n}, partner=partner).public_id for n in range(5)]
    page1 = partner_api.get("/api/v1/events/", {"limit": 2}).json()
    assert [e["id"] for e in page1["results"]] == first_ids[::-1][:2]
    publish("order.paid", {"n": "new"}, partner=partner)  # lands before page 1
    page2 = partner_api.get(page1["next"]).json()
    page3 = partner_api.get(page2["next"]).json()
    seen = [e["id"] for e in page1["results"] + page2["results"] + page3["results"]]
    assert seen == first_ids[::-1] and page3["next"] is None
    back = partner_api.get(page2["previous"]).json()
    assert [e["id"] for e in back["results"]] == first_ids[::-1][:2]
    assert "cursor=" in page1["next"] and "prt_" not in page1["next"]


@pytest.mark.parametrize(
    "path", ["/api/v1/endpoints/", "/api/v1/events/", "/api/v1/deliveries/", "/api/v1/event-types/"]
)
def test_lists_run_a_constant_number_of_queries(partner, partner_api, event_types, path):
    def queries_for(rows: int) -> int:
        for _ in range(rows):
            make_endpoint(partner, event_types=["order.*", "shipment.moved"])
        publish("order.paid", {"n": rows}, partner=partner)
        EventType.objects.get_or_create(name=f"extra.t{rows}")
        with CaptureQueriesContext(connection) as ctx:
            assert partner_api.get(path).status_code == 200
        return len(ctx)

    partner_api.get(path)  # the token's last_used_at write happens here, once
    assert queries_for(2) == queries_for(8) <= 3


def test_endpoint_switch_off_and_on_keeps_who_and_why(partner, partner_api, event_types):
    endpoint = make_endpoint(partner)
    url = f"/api/v1/endpoints/{endpoint.public_id}"
    off = partner_api.post(f"{url}/disable/", {"reason": "maintenance"}, format="json").json()
    assert (off["enabled"], off["disabled_kind"], off["disabled_reason"]) == (
        False, "manual", "maintenance",
    )  # fmt: skip
    held = publish("order.paid", {}, partner=partner).deliveries.get()  # held while off
    reason = partner_api.get(f"/api/v1/deliveries/{held.public_id}/").json()["reason"]
    assert reason["code"] == "held_endpoint_off" and "maintenance" in reason["text"]
    on = partner_api.post(f"{url}/enable/").json()
    assert on["enabled"] is True and on["disabled_at"] is None and on["disabled_kind"] is None
    via_patch = partner_api.patch(f"{url}/", {"enabled": False}, format="json").json()
    assert via_patch["enabled"] is False and via_patch["disabled_kind"] == "manual"
    assert partner_api.post(f"{url}/enable/", {"surprise": 1}, format="json").status_code == 400


def test_patch_replaces_subscriptions_and_keeps_per_type_filters(partner, partner_api, event_types):
    endpoint = make_endpoint(partner, event_types=["*"])
    filtered = {
        "event_type": "order.paid",
        "filter": {"path": "data.total", "op": "gt", "value": 9},
    }
    url = f"/api/v1/endpoints/{endpoint.public_id}/"
    body = partner_api.patch(url, {"event_types": [filtered, "shipment.*"]}, format="json").json()
    assert body["event_types"] == [filtered, "shipment.*"]
    again = partner_api.patch(url, {"event_types": body["event_types"]}, format="json").json()
    assert again["event_types"] == body["event_types"], "what GET shows can be sent back"
    assert publish("order.paid", {"total": 1}, partner=partner).deliveries.count() == 0
    assert publish("order.paid", {"total": 10}, partner=partner).deliveries.count() == 1


def test_bearer_token_is_write_only_and_regenerated_once(partner, partner_api, event_types):
    created = partner_api.post(
        "/api/v1/endpoints/",
        {"name": "a", "url": "https://a.example.com/", "auth_token": "s3cret-value"},
        format="json",
    ).json()
    assert created["has_auth_token"] is True and "s3cret-value" not in str(created)
    url = f"/api/v1/endpoints/{created['id']}"
    token = partner_api.post(f"{url}/regenerate-token/").json()["auth_token"]
    assert len(token) >= 32 and Endpoint.objects.get(public_id=created["id"]).auth_token == token
    shown = partner_api.get(f"{url}/")
    assert token not in shown.content.decode() and "auth_token" not in shown.json()
    cleared = partner_api.patch(f"{url}/", {"auth_token": ""}, format="json").json()
    assert cleared["has_auth_token"] is False


def test_rotate_secret_grace_is_bounded(partner, partner_api, event_types):
    endpoint = make_endpoint(partner)
    url = f"/api/v1/endpoints/{endpoint.public_id}/rotate-secret/"
    too_long = partner_api.post(url, {"grace_seconds": 8 * 86400}, format="json")
    assert too_long.status_code == 400 and "grace_seconds" in too_long.json()["errors"]
    now = partner_api.post(url, {"grace_seconds": 0}, format="json").json()
    assert now["previous_secret_expires_at"] is None
    endpoint.refresh_from_db()
    assert endpoint.signing_secret == now["secret"] and endpoint.active_secrets() == [now["secret"]]


def test_recover_resends_what_failed_since_a_time(partner, partner_api, event_types):
    endpoint = make_endpoint(partner)
    for n in range(3):
        publish("order.paid", {"n": n}, partner=partner)
    Delivery.objects.update(status=DeliveryStatus.DEAD, next_attempt_at=None)
    url = f"/api/v1/endpoints/{endpoint.public_id}/recover/"
    since = (timezone.now() - timedelta(hours=1)).isoformat()
    response = partner_api.post(url, {"since": since}, format="json")
    assert response.status_code == 202 and response.json() == {"queued": 3}
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.PENDING}
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    assert partner_api.post(url, {"since": future}, format="json").status_code == 400
    assert partner_api.post(url, {}, format="json").json()["errors"] == {
        "since": ["This field is required."]
    }


def test_delete_removes_the_endpoint_and_its_deliveries_but_not_the_event(
    partner, partner_api, event_types
):
    endpoint = make_endpoint(partner)
    event = publish("order.paid", {}, partner=partner)
    response = partner_api.delete(f"/api/v1/endpoints/{endpoint.public_id}/")
    assert response.status_code == 204 and not response.content
    assert not Endpoint.objects.exists() and not Delivery.objects.exists()
    assert Event.objects.filter(pk=event.pk).exists()
    assert partner_api.get(f"/api/v1/endpoints/{endpoint.public_id}/").status_code == 404


def test_deliveries_filter_by_status_endpoint_event_and_type(partner, partner_api, event_types):
    a = make_endpoint(partner, name="a")
    b = make_endpoint(partner, name="b", event_types=["order.*"])
    paid = publish("order.paid", {}, partner=partner)
    moved = publish("shipment.moved", {}, partner=partner)
    Delivery.objects.filter(event=moved).update(status=DeliveryStatus.DEAD)

    def ids(**params):
        return sorted(
            d["id"] for d in partner_api.get("/api/v1/deliveries/", params).json()["results"]
        )

    def of(**filters):
        return sorted(Delivery.objects.filter(**filters).values_list("public_id", flat=True))

    assert ids(status="dead") == of(event=moved)
    assert ids(endpoint=b.public_id) == of(endpoint=b)
    assert ids(event=paid.public_id) == of(event=paid)
    assert ids(event_type="shipment.moved", endpoint=a.public_id) == of(event=moved, endpoint=a)


def test_publisher_reads_every_event_and_filters_them(
    partner, other_partner, publisher_api, event_types
):
    mine = publish("order.paid", {}, partner=partner)
    publish("shipment.moved", {}, partner=other_partner)
    broadcast = publish("order.paid", {})
    listed = publisher_api.get("/api/v1/events/").json()["results"]
    assert len(listed) == 3
    by_partner = publisher_api.get("/api/v1/events/", {"partner": partner.public_id}).json()
    assert [e["id"] for e in by_partner["results"]] == [mine.public_id]
    by_type = publisher_api.get("/api/v1/events/", {"type": "order.paid"}).json()["results"]
    assert {e["id"] for e in by_type} == {mine.public_id, broadcast.public_id}
    after = publisher_api.get(
        "/api/v1/events/", {"created_after": broadcast.created_at.isoformat()}
    )
    assert [e["id"] for e in after.json()["results"]] == [broadcast.public_id]


def test_event_type_catalog_add_archive_restore(publisher_api, partner_api, event_types):
    created = publisher_api.post(
        "/api/v1/event-types/",
        {"name": "invoice.sent", "description": "An invoice went out.", "example": {"id": 1}},
        format="json",
    )
    assert created.status_code == 201 and created.json()["archived"] is False
    names = [t["name"] for t in partner_api.get("/api/v1/event-types/").json()["results"]]
    assert "invoice.sent" in names and names == sorted(names)
    archived = publisher_api.post("/api/v1/event-types/invoice.sent/archive/").json()
    assert archived["archived"] is True and archived["archived_at"]
    refused = publisher_api.post(
        "/api/v1/events/", {"type": "invoice.sent", "data": {}}, format="json"
    )
    assert refused.status_code == 400 and "type" in refused.json()["errors"]
    active = [t["name"] for t in partner_api.get("/api/v1/event-types/").json()["results"]]
    gone = partner_api.get("/api/v1/event-types/", {"archived": "true"}).json()["results"]
    assert "invoice.sent" not in active and [t["name"] for t in gone] == ["invoice.sent"]
    assert partner_api.get("/api/v1/event-types/invoice.sent/").json()["archived"] is True
    restored = publisher_api.post("/api/v1/event-types/invoice.sent/unarchive/").json()
    assert restored["archived"] is False
