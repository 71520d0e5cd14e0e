"""Why a delivery waits, where an event went, and who did what — through the API, with
a real receiver, the real engine and the real services."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from audit.models import Action, AuditEntry
from deliveries.models import CircuitState, Delivery, DeliveryStatus, EndpointHealth
from deliveries.services import endpoint_close_circuit, endpoint_probe_now
from endpoints.models import ApiToken
from endpoints.services import endpoint_disable
from events.services import publish
from tests.api.conftest import client_for, make_token
from tests.factories import make_endpoint
from tests.queue import run_queue
from tests.receiver import Response

pytestmark = pytest.mark.django_db(transaction=True)


def _open_circuit(endpoint, receiver):
    """Fail the endpoint until its circuit opens, as the workers do."""
    receiver.default = Response(500, body="boom")
    for n in range(settings.WEBHOOKHUB_CIRCUIT_FAILURE_THRESHOLD):
        publish("order.paid", {"n": n}, partner=endpoint.partner)
        run_queue()
    health = EndpointHealth.objects.get(pk=endpoint.pk)
    assert health.circuit_state == CircuitState.OPEN
    return health


def test_a_delivery_behind_an_open_circuit_says_so_and_probe_now_sends_it(
    event_types, receiver, partner, partner_token
):
    endpoint = make_endpoint(partner, url=receiver.url_for(), name="Acme orders")
    _open_circuit(endpoint, receiver)
    waiting = publish("order.paid", {"n": "behind"}, partner=partner)
    run_queue()
    sent = len(receiver.requests)
    delivery = Delivery.objects.get(event=waiting)
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempt_count == 0

    api = client_for(partner_token)
    body = api.get(f"/api/v1/deliveries/{delivery.public_id}/").json()
    assert body["reason"]["code"] == "waiting_circuit_open"
    threshold = settings.WEBHOOKHUB_CIRCUIT_FAILURE_THRESHOLD
    assert f"after {threshold} failures" in body["reason"]["text"]
    assert "Acme orders" in body["reason"]["text"]
    listed = api.get("/api/v1/deliveries/", {"status": "pending"}).json()["results"]
    assert [d["reason"]["code"] for d in listed] == ["waiting_circuit_open"]

    # Probe now: the cooldown ends, one delivery goes as the probe; success closes it.
    receiver.default = Response(200)
    assert endpoint_probe_now(endpoint, by="admin:sam", reason="partner fixed it") is True
    run_queue()
    run_queue()
    assert len(receiver.requests) > sent
    assert EndpointHealth.objects.get(pk=endpoint.pk).circuit_state == CircuitState.CLOSED
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    entry = AuditEntry.objects.get(action=Action.CIRCUIT_PROBED)
    assert (entry.actor, entry.object_id, entry.reason) == (
        "admin:sam",
        endpoint.public_id,
        "partner fixed it",
    )
    # Closed already: probing again changes nothing and writes nothing.
    assert endpoint_probe_now(endpoint, by="admin:sam") is False
    assert AuditEntry.objects.filter(action=Action.CIRCUIT_PROBED).count() == 1


def test_close_circuit_sends_what_waited_at_once(event_types, receiver, partner):
    endpoint = make_endpoint(partner, url=receiver.url_for())
    _open_circuit(endpoint, receiver)
    receiver.default = Response(200)
    waiting = [publish("order.paid", {"n": i}, partner=partner) for i in range(3)]
    run_queue()
    assert not Delivery.objects.filter(event__in=waiting, status=DeliveryStatus.SUCCEEDED)
    assert endpoint_close_circuit(endpoint, by="admin:sam") is True
    run_queue()
    assert Delivery.objects.filter(event__in=waiting, status=DeliveryStatus.SUCCEEDED).count() == 3
    assert AuditEntry.objects.filter(action=Action.CIRCUIT_CLOSED, actor="admin:sam").count() == 1
    assert endpoint_close_circuit(endpoint, by="admin:sam") is False


def test_held_and_dead_deliveries_say_why(event_types, receiver, partner, partner_token):
    endpoint = make_endpoint(
        partner, url=receiver.url_for(), retry_policy={"max_attempts": 1}, name="Acme"
    )
    receiver.default = Response(500)
    dead = publish("order.paid", {"n": 1}, partner=partner)
    run_queue()
    held = publish("order.paid", {"n": 2}, partner=partner)
    endpoint_disable(endpoint, by="admin:sam", reason="partner migrating servers")
    run_queue()
    api = client_for(partner_token)
    rows = {d["event"]: d["reason"] for d in api.get("/api/v1/deliveries/").json()["results"]}
    assert rows[dead.public_id]["code"] == "dead"
    assert "Dead after 1 attempts; last: HTTP 500" in rows[dead.public_id]["text"]
    assert rows[held.public_id]["code"] == "held_endpoint_off"
    assert "admin:sam" in rows[held.public_id]["text"]
    assert "partner migrating servers" in rows[held.public_id]["text"]
    # In Korean when asked.
    korean = api.get("/api/v1/deliveries/", HTTP_ACCEPT_LANGUAGE="ko").json()["results"]
    assert all(r["reason"]["text"] != rows[r["event"]]["text"] for r in korean)


def test_ordered_endpoint_queues_behind_the_head(event_types, receiver, partner, partner_token):
    endpoint = make_endpoint(partner, url=receiver.url_for(), ordered=True)
    first = publish("order.paid", {"n": 1}, partner=partner)
    second = publish("order.paid", {"n": 2}, partner=partner)
    body = client_for(partner_token).get("/api/v1/deliveries/", {"event": second.public_id})
    reason = body.json()["results"][0]["reason"]
    assert reason["code"] == "queued_behind"
    assert first.public_id in reason["text"]
    assert endpoint.ordered


def test_routing_says_why_each_endpoint_did_or_did_not_get_the_event(
    event_types, receiver, partner, partner_token, other_partner
):
    delivered = make_endpoint(partner, url=receiver.url_for(), name="all orders")
    make_endpoint(partner, url=receiver.url_for(), name="shipping", event_types=["shipment.*"])
    make_endpoint(
        partner,
        url=receiver.url_for(),
        name="big orders",
        filter={"path": "data.amount", "op": "gte", "value": 100},
    )
    off = make_endpoint(partner, url=receiver.url_for(), name="paused")
    endpoint_disable(off, by="admin:sam", reason="maintenance window")
    make_endpoint(other_partner, url=receiver.url_for(), name="globex")
    event = publish("order.paid", {"amount": 50}, partner=partner)
    run_queue()

    response = client_for(partner_token).get(f"/api/v1/events/{event.public_id}/routing/")
    assert response.status_code == 200
    routes = {r["endpoint_name"]: r for r in response.json()["routes"]}
    assert set(routes) == {"all orders", "shipping", "big orders", "paused"}
    assert routes["all orders"]["outcome"] == "delivery"
    assert routes["all orders"]["status"] == "succeeded"
    assert routes["all orders"]["delivery"] == Delivery.objects.get(endpoint=delivered).public_id
    assert routes["shipping"]["outcome"] == "not_subscribed"
    assert "shipment.*" in routes["shipping"]["reason"]
    assert routes["big orders"]["outcome"] == "filtered"
    assert "data.amount gte 100 — found 50" in routes["big orders"]["reason"]
    # Switched off: the event waits for it, held (and says who switched it off, why).
    assert routes["paused"]["outcome"] == "delivery" and routes["paused"]["status"] == "pending"
    assert "admin:sam" in routes["paused"]["reason"]
    assert "maintenance window" in routes["paused"]["reason"]

    # Another partner's token: the event is not theirs (404, like an unknown id).
    globex = make_token(ApiToken.Role.PARTNER, other_partner)
    assert client_for(globex).get(f"/api/v1/events/{event.public_id}/routing/").status_code == 404


def test_broadcast_routing_is_scoped_to_the_calling_partner(
    event_types, receiver, partner, partner_token, other_partner, publisher_token
):
    mine = make_endpoint(partner, url=receiver.url_for(), name="mine")
    make_endpoint(other_partner, url=receiver.url_for(), name="theirs")
    event = publish("order.paid", {"amount": 1})
    run_queue()
    as_partner = client_for(partner_token).get(f"/api/v1/events/{event.public_id}/routing/")
    assert [r["endpoint"] for r in as_partner.json()["routes"]] == [mine.public_id]
    as_publisher = client_for(publisher_token).get(f"/api/v1/events/{event.public_id}/routing/")
    assert {r["endpoint_name"] for r in as_publisher.json()["routes"]} == {"mine", "theirs"}


def test_audit_trail_records_who_what_why_and_is_scoped(
    event_types, receiver, partner, partner_token, other_partner
):
    endpoint = make_endpoint(partner, url=receiver.url_for())
    theirs = make_endpoint(other_partner, url=receiver.url_for())
    api = client_for(partner_token)
    response = api.post(
        f"/api/v1/endpoints/{endpoint.public_id}/disable/", {"reason": "going on holiday"}
    )
    assert response.status_code == 200, response.content
    api.post(f"/api/v1/endpoints/{endpoint.public_id}/enable/")
    api.post(f"/api/v1/endpoints/{endpoint.public_id}/rotate-secret/", {"grace_seconds": 60})
    endpoint_disable(theirs, by="admin:sam", reason="not yours")

    entries = api.get("/api/v1/audit/", {"object": endpoint.public_id}).json()["results"]
    actions = [e["action"] for e in entries]
    assert actions[:3] == ["endpoint.secret_rotated", "endpoint.enabled", "endpoint.disabled"]
    disabled = entries[2]
    token_prefix = ApiToken.objects.get(partner=partner).prefix
    assert disabled["actor"] == f"api:{token_prefix}"
    assert disabled["reason"] == "going on holiday"
    assert "going on holiday" in disabled["text"]
    # The other partner's endpoint is not in this partner's trail, even by id.
    assert api.get("/api/v1/audit/", {"object": theirs.public_id}).json()["results"] == []
    everything = api.get("/api/v1/audit/").json()["results"]
    assert all(e["object_id"] != theirs.public_id for e in everything)
    # Filters that do not parse are a 400, not an empty page.
    assert api.get("/api/v1/audit/", {"since": "yesterday"}).status_code == 400
    assert api.get("/api/v1/audit/", {"action": "nope"}).status_code == 400


def test_bulk_actions_write_one_entry_per_endpoint_with_the_count(event_types, receiver, partner):
    from deliveries.services import deliveries_retry_now

    one = make_endpoint(partner, url=receiver.url_for(), retry_policy={"max_attempts": 1})
    two = make_endpoint(partner, url=receiver.url_for(), retry_policy={"max_attempts": 1})
    receiver.default = Response(500)
    for n in range(3):
        publish("order.paid", {"n": n}, partner=partner)
    run_queue()
    assert Delivery.objects.filter(status=DeliveryStatus.DEAD).count() == 6
    receiver.default = Response(200)
    queued = deliveries_retry_now(
        Delivery.objects.filter(status=DeliveryStatus.DEAD), by="admin:sam", reason="fixed"
    )
    assert queued == 6
    entries = AuditEntry.objects.filter(action=Action.RETRIED).order_by("object_id")
    assert sorted((e.object_id, e.count) for e in entries) == sorted(
        [(one.public_id, 3), (two.public_id, 3)]
    )
    assert all(len(e.details["deliveries"]) == 3 and e.reason == "fixed" for e in entries)


def test_audit_entries_are_append_only(db, partner):
    endpoint = make_endpoint(partner)
    entry = AuditEntry.objects.get(action=Action.ENDPOINT_CREATED, object_id=endpoint.public_id)
    entry.reason = "rewritten"
    with pytest.raises(ValueError):
        entry.save()
    assert AuditEntry.objects.get(pk=entry.pk).reason == ""


def test_event_off_at_publish_time_then_switched_on_is_explained_from_the_trail(
    event_types, receiver, partner, partner_token
):
    from endpoints.models import Endpoint
    from endpoints.services import endpoint_enable

    api = client_for(partner_token)
    # Switched off by a person: the event waits for it, held, and goes when it is on.
    paused = make_endpoint(partner, url=receiver.url_for(), name="flappy")
    endpoint_disable(paused, by="admin:kim", reason="receiver down")
    event = publish("order.paid", {"n": 1}, partner=partner)
    endpoint_enable(paused, by="admin:kim")
    (route,) = api.get(f"/api/v1/events/{event.public_id}/routing/").json()["routes"]
    assert route["outcome"] in {"delivery", "endpoint_off"}
    assert route["outcome"] == "delivery"
    run_queue()
    (request,) = receiver.wait_for(1)
    signed = Webhook(paused.signing_secret).verify(request.body, dict(request.headers))
    assert signed["id"] == event.public_id
    assert timezone.now() - event.created_at < timedelta(minutes=1)
    assert Webhook  # the receiver verified the held delivery's signature above

    # Switched off by webhookhub itself: no delivery; after switching it on, the event
    # page still says it was off when published, from the audit trail's last switch.
    endpoint_disable(
        paused, by="system", reason="auto: failing since …", kind=Endpoint.DisabledBy.AUTO
    )
    missed = publish("order.paid", {"n": 2}, partner=partner)
    endpoint_enable(paused, by="admin:kim", reason="receiver fixed")
    (route,) = api.get(f"/api/v1/events/{missed.public_id}/routing/").json()["routes"]
    assert (route["outcome"], route["delivery"]) == ("endpoint_off", None)
    assert "switched off by system" in route["reason"] and "auto: failing" in route["reason"]
