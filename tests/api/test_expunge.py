"""`DELETE /api/v1/events/{id}/payload/`: the payload, body and what receivers answered
are gone from the rows, the API and the admin; the history stays; nothing sends it again.
Real receiver, real engine, real services."""

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from audit.models import Action, AuditEntry
from deliveries import lifecycle
from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus
from events.models import Event
from events.services import publish
from tests.admin.conftest import support_member
from tests.factories import make_endpoint
from tests.queue import run_queue
from tests.receiver import Response

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "ann.lee@example.com"


def _event_with_history(receiver, partner):
    """One event, received by one endpoint (which echoed the payload back in its
    response) and failing at another (which quoted it in its error page), with a retry
    still to come."""
    ok = make_endpoint(partner, url=receiver.url_for("/ok"), name="ok")
    failing = make_endpoint(
        partner, url=receiver.url_for("/failing"), name="failing", retry_policy={"max_attempts": 5}
    )

    def answer(request):
        if request.path == "/ok":
            return Response(200, body=f"thanks {SECRET}", headers={"X-Echo": SECRET})
        return Response(503, body=f"cannot take {SECRET} now")

    receiver.respond_with(answer)
    event = publish("order.paid", {"customer": {"email": SECRET}, "total": 12}, partner=partner)
    run_queue()
    rows = {d.endpoint_id: d for d in Delivery.objects.filter(event=event)}
    assert rows[ok.pk].status == DeliveryStatus.SUCCEEDED
    assert rows[failing.pk].status == DeliveryStatus.RETRYING
    assert SECRET in rows[failing.pk].last_error
    assert DeliveryAttempt.objects.filter(response_body__contains=SECRET).count() == 2
    return event, ok, failing


def _nothing_left(event):
    """No row of the event, its deliveries or its attempts holds the secret."""
    event = Event.objects.get(pk=event.pk)
    assert event.payload == {"expunged": True}
    assert SECRET not in event.body and json.loads(event.body)["data"] == {"expunged": True}
    attempts = DeliveryAttempt.objects.filter(delivery__event=event)
    assert attempts.exists()
    for attempt in attempts:
        assert SECRET not in attempt.response_body + json.dumps(attempt.response_headers)
        assert SECRET not in json.dumps(attempt.request_headers)
    for delivery in Delivery.objects.filter(event=event):
        assert SECRET not in delivery.last_error


def test_publisher_erases_a_payload_and_keeps_the_history(
    event_types, receiver, partner, publisher_api, partner_api
):
    event, ok, failing = _event_with_history(receiver, partner)
    before = {
        d.pk: (d.public_id, d.attempt_count, d.last_status_code)
        for d in Delivery.objects.filter(event=event)
    }
    attempt_times = list(
        DeliveryAttempt.objects.filter(delivery__event=event)
        .order_by("pk")
        .values_list("pk", "started_at", "duration_ms", "response_status_code")
    )

    answer = publisher_api.delete(f"/api/v1/events/{event.public_id}/payload/")

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["id"] == event.public_id and body["expunged_at"]
    assert body["deliveries_cancelled"] == 1 and body["attempts_emptied"] == 2
    _nothing_left(event)
    # History kept: ids, type, statuses (the waiting one cancelled), counts, timings.
    event.refresh_from_db()
    assert event.expunged_at is not None and event.expunged_by.startswith("api:")
    assert event.event_type.name == "order.paid" and event.partner_id == partner.pk
    after = {
        d.pk: (d.public_id, d.attempt_count, d.last_status_code)
        for d in Delivery.objects.filter(event=event)
    }
    assert after == before
    statuses = dict(Delivery.objects.filter(event=event).values_list("endpoint_id", "status"))
    assert statuses == {ok.pk: DeliveryStatus.SUCCEEDED, failing.pk: DeliveryStatus.CANCELLED}
    cancelled = Delivery.objects.get(event=event, endpoint=failing)
    assert cancelled.last_error.endswith("payload erased")
    assert (
        list(
            DeliveryAttempt.objects.filter(delivery__event=event)
            .order_by("pk")
            .values_list("pk", "started_at", "duration_ms", "response_status_code")
        )
        == attempt_times
    )
    # The audit trail: the erasure and the cancellation, nothing of the payload.
    erased = AuditEntry.objects.get(action=Action.EXPUNGED, object_id=event.public_id)
    assert erased.actor.startswith("api:") and erased.partner_id == partner.pk
    assert AuditEntry.objects.filter(action=Action.CANCELLED, object_id=failing.public_id).exists()
    assert SECRET not in json.dumps(list(AuditEntry.objects.values()), default=str)

    # The API shows the tombstone, to the publisher and to the partner.
    for api in (publisher_api, partner_api):
        shown = api.get(f"/api/v1/events/{event.public_id}/")
        assert shown.status_code == 200
        assert shown.json()["data"] == {"expunged": True} and shown.json()["expunged_at"]
        assert SECRET not in shown.content.decode()
    for delivery_id, *_ in before.values():
        shown = partner_api.get(f"/api/v1/deliveries/{delivery_id}/")
        assert shown.status_code == 200 and SECRET not in shown.content.decode()

    # Repeating it is harmless: 200 again, nothing more to cancel.
    again = publisher_api.delete(f"/api/v1/events/{event.public_id}/payload/")
    assert again.status_code == 200
    assert again.json()["deliveries_cancelled"] == 0 and again.json()["attempts_emptied"] == 0
    assert AuditEntry.objects.filter(action=Action.EXPUNGED).count() == 1


def test_an_erased_event_is_never_sent_again_and_says_why(
    event_types, receiver, partner, publisher_api, partner_api
):
    event, ok, failing = _event_with_history(receiver, partner)
    assert publisher_api.delete(f"/api/v1/events/{event.public_id}/payload/").status_code == 200
    sent = len(receiver.requests)

    replay = partner_api.post(f"/api/v1/events/{event.public_id}/replay/", {}, format="json")
    assert replay.status_code == 409
    assert "was erased" in replay.json()["detail"] and event.public_id in replay.json()["detail"]
    replay_one = publisher_api.post(
        f"/api/v1/events/{event.public_id}/replay/", {"endpoint": ok.public_id}, format="json"
    )
    assert replay_one.status_code == 409
    delivery = Delivery.objects.get(event=event, endpoint=failing)
    retry = partner_api.post(f"/api/v1/deliveries/{delivery.public_id}/retry/")
    assert retry.status_code == 409 and "was erased" in retry.json()["detail"]
    recover = partner_api.post(
        f"/api/v1/endpoints/{failing.public_id}/recover/",
        {"since": (timezone.now() - timedelta(hours=1)).isoformat()},
        format="json",
    )
    assert recover.status_code == 202 and recover.json()["queued"] == 0

    run_queue()
    assert len(receiver.requests) == sent
    statuses = set(Delivery.objects.filter(event=event).values_list("status", flat=True))
    assert statuses == {DeliveryStatus.SUCCEEDED, DeliveryStatus.CANCELLED}
    assert not AuditEntry.objects.filter(action=Action.REPLAYED).exists()


def test_the_admin_shows_the_erasure_instead_of_the_payload(
    event_types, receiver, partner, publisher_api
):
    event, _ok, failing = _event_with_history(receiver, partner)
    assert publisher_api.delete(f"/api/v1/events/{event.public_id}/payload/").status_code == 200
    support_member()
    admin = Client()
    assert admin.login(username="sam", password="pw-for-tests")

    page = admin.get(f"/admin/events/event/{event.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'id="payload-erased"' in text and "Payload erased at" in text
    assert SECRET not in text and 'id="action-replay"' not in text
    for delivery in Delivery.objects.filter(event=event):
        page = admin.get(f"/admin/deliveries/delivery/{delivery.pk}/change/")
        assert page.status_code == 200
        assert SECRET not in page.content.decode() and "Payload erased at" in page.content.decode()

    # The replay page refuses, and says so.
    refused = admin.post(f"/admin/events/event/{event.pk}/replay/", {"reason": "x"}, follow=True)
    assert "cannot be replayed" in refused.content.decode()
    delivery = Delivery.objects.get(event=event, endpoint=failing)
    refused = admin.post(
        f"/admin/deliveries/delivery/{delivery.pk}/retry/", {"reason": "x"}, follow=True
    )
    assert "was erased" in refused.content.decode()
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.CANCELLED


def test_only_a_publisher_token_erases_and_bad_requests_change_nothing(
    event_types, receiver, partner, partner_api, publisher_api
):
    event, _ok, _failing = _event_with_history(receiver, partner)
    refused = partner_api.delete(f"/api/v1/events/{event.public_id}/payload/")
    assert refused.status_code == 403 and "publisher" in refused.json()["detail"]
    missing = publisher_api.delete("/api/v1/events/evt_00000000000000000000000000/payload/")
    assert missing.status_code == 404
    with_body = publisher_api.delete(
        f"/api/v1/events/{event.public_id}/payload/", {"reason": "x"}, format="json"
    )
    assert with_body.status_code == 400 and "reason" in with_body.json()["errors"]
    event.refresh_from_db()
    assert event.expunged_at is None and SECRET in event.body
    assert not AuditEntry.objects.filter(action=Action.EXPUNGED).exists()


def test_an_event_being_delivered_is_not_erased_until_the_answer_is_in(
    event_types, receiver, partner, publisher_api
):
    endpoint = make_endpoint(partner, url=receiver.url_for())
    event = publish("order.paid", {"customer": {"email": SECRET}}, partner=partner)
    now = timezone.now()
    with transaction.atomic():  # a worker's claim: the delivery is in flight
        claimed = lifecycle.claim(
            endpoint.pk, limit=1, token="t" * 16, lease=timedelta(seconds=30), now=now
        )
    assert len(claimed) == 1

    busy = publisher_api.delete(f"/api/v1/events/{event.public_id}/payload/")
    assert busy.status_code == 409 and "being sent right now" in busy.json()["detail"]
    event.refresh_from_db()
    assert event.expunged_at is None and SECRET in event.body
    assert Delivery.objects.get(event=event).status == DeliveryStatus.IN_FLIGHT

    lifecycle.succeed({200: [claimed[0].pk]}, token="t" * 16, now=now)
    done = publisher_api.delete(f"/api/v1/events/{event.public_id}/payload/")
    assert done.status_code == 200
    _nothing_left_but_no_attempts = Event.objects.get(pk=event.pk)
    assert _nothing_left_but_no_attempts.payload == {"expunged": True}
