"""Endpoint verification against a real receiver and the real engine (the broker's queue
run in this process): the challenge, the hold, the answer, the release."""

import json
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_q.models import OrmQ
from standardwebhooks.webhooks import Webhook

from audit.models import Action, AuditEntry
from deliveries import dispatch
from deliveries.explain import delivery_reason, endpoint_state
from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus
from deliveries.verification import endpoint_verification_send
from endpoints.models import Endpoint
from endpoints.services import endpoint_update
from endpoints.verification import endpoint_verify
from events.models import Event
from events.services import publish
from tests.factories import make_endpoint
from tests.queue import queued_endpoints, run_queue
from tests.receiver import Response

pytestmark = pytest.mark.django_db(transaction=True)

VERIFICATION = "webhookhub.endpoint.verification"


@pytest.fixture
def required(settings):
    settings.WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION = True


def types_received(receiver) -> list[str]:
    return [r.json()["type"] for r in receiver.requests]


def verify_signature(endpoint, request) -> dict:
    return Webhook(endpoint.signing_secret).verify(request.body, dict(request.headers))


def audit_actions(endpoint) -> list[str]:
    return list(
        AuditEntry.objects.filter(object_id=endpoint.public_id)
        .order_by("id")
        .values_list("action", flat=True)
    )


def test_with_the_setting_off_nothing_is_challenged_or_held(event_types, receiver):
    endpoint = make_endpoint(url=receiver.url_for())
    publish("order.paid", {"n": 1}, partner=endpoint.partner)
    run_queue()
    endpoint.refresh_from_db()
    assert (endpoint.verified_at, endpoint.verification_sent_at) == (None, None)
    assert types_received(receiver) == ["order.paid"]
    assert not Event.objects.filter(event_type__name=VERIFICATION).exists()


def test_new_endpoint_is_held_until_it_answers_then_its_deliveries_arrive_signed(
    event_types, receiver, required
):
    receiver.answer_challenges()
    endpoint = make_endpoint(url=receiver.url_for())
    assert endpoint.awaiting_verification
    with_reason = publish("order.paid", {"n": 1}, partner=endpoint.partner)
    held = Delivery.objects.get(event=with_reason)
    reason = delivery_reason(held)
    assert reason.code == "awaiting_verification"
    assert reason.text.startswith(f"Held: awaiting verification of {endpoint.name} (challenge")
    assert endpoint_state(endpoint, None).code == "awaiting_verification"

    run_queue()
    challenge_request, delivered = receiver.wait_for(2)
    # The challenge first (the order waited for its answer), each signed as usual.
    assert challenge_request.json()["type"] == VERIFICATION
    assert delivered.started_at >= challenge_request.finished_at
    data = verify_signature(endpoint, challenge_request)["data"]
    assert set(data) == {"challenge", "endpoint_id", "url"}
    assert data["endpoint_id"] == endpoint.public_id and data["url"] == endpoint.url
    assert verify_signature(endpoint, delivered)["data"] == {"n": 1}
    endpoint.refresh_from_db()
    assert endpoint.verified_at is not None and not endpoint.awaiting_verification
    assert endpoint.verification_challenge_hash == ""
    assert Delivery.objects.get(pk=held.pk).status == DeliveryStatus.SUCCEEDED
    assert audit_actions(endpoint) == [
        Action.ENDPOINT_CREATED,
        Action.VERIFICATION_SENT,
        Action.VERIFIED,
    ]
    verified = AuditEntry.objects.get(object_id=endpoint.public_id, action=Action.VERIFIED)
    assert (verified.actor, verified.details["how"]) == ("system", "answered")


def test_a_2xx_without_the_challenge_verifies_nothing_and_says_why(event_types, receiver, required):
    receiver.default = Response(200, "ok")
    endpoint = make_endpoint(url=receiver.url_for())
    event = publish("order.paid", {"n": 1}, partner=endpoint.partner)
    run_queue()
    assert types_received(receiver) == [VERIFICATION]
    endpoint.refresh_from_db()
    assert endpoint.awaiting_verification
    challenge = Delivery.objects.get(event__event_type__name=VERIFICATION)
    assert challenge.status == DeliveryStatus.DEAD  # a test: once, never retried
    attempt = DeliveryAttempt.objects.get(delivery=challenge)
    assert (attempt.response_status_code, attempt.succeeded) == (200, False)
    assert attempt.error_kind == "challenge_not_answered"
    why = delivery_reason(challenge).text
    assert "HTTP 200" in why and 'without {"challenge": …}' in why
    assert delivery_reason(Delivery.objects.get(event=event)).code == "awaiting_verification"
    # Not woken again and again: nothing may go until it is verified.
    assert not OrmQ.objects.exists()
    assert dispatch.dispatch_due(now=timezone.now() + timedelta(seconds=5)) == 0


def test_another_challenge_in_the_answer_is_not_verification(event_types, receiver, required):
    receiver.default = Response(200, json.dumps({"challenge": "whch_guess"}))
    endpoint = make_endpoint(url=receiver.url_for())
    run_queue()
    endpoint.refresh_from_db()
    assert endpoint.awaiting_verification
    attempt = DeliveryAttempt.objects.get(delivery__endpoint=endpoint)
    assert "another challenge" in attempt.error_message


def test_the_challenge_is_not_shown_back_by_webhookhub(event_types, receiver, required):
    # An echoing receiver (it answers with the whole request) must not hand the
    # challenge to someone who could then paste it without running the URL.
    receiver.respond_with(lambda request: Response(200, json.dumps({"got": request.json()})))
    endpoint = make_endpoint(url=receiver.url_for())
    run_queue()
    (request,) = receiver.wait_for(1)
    challenge = request.json()["data"]["challenge"]
    event = Event.objects.get(event_type__name=VERIFICATION)
    assert event.payload["challenge"] == "••••" and challenge in event.body
    attempt = DeliveryAttempt.objects.get(delivery__event=event)
    assert challenge not in attempt.response_body and "••••" in attempt.response_body
    assert challenge not in json.dumps(list(AuditEntry.objects.values()), default=str)
    endpoint.refresh_from_db()
    assert endpoint.awaiting_verification


def test_a_pasted_challenge_verifies_and_releases_what_was_held(event_types, receiver, required):
    receiver.default = Response(204, "")
    endpoint = make_endpoint(url=receiver.url_for())
    publish("order.paid", {"n": 1}, partner=endpoint.partner)
    run_queue()
    (request,) = receiver.wait_for(1)
    challenge = request.json()["data"]["challenge"]

    with pytest.raises(ValidationError) as refused:
        endpoint_verify(endpoint, challenge="whch_wrong", by="test")
    assert "not the endpoint's current challenge" in str(refused.value)
    endpoint.refresh_from_db()
    assert endpoint.verified_at is None and Action.VERIFIED not in audit_actions(endpoint)

    endpoint_verify(endpoint, challenge=challenge, by="portal:someone")
    assert queued_endpoints() == [endpoint.pk]  # its drain is woken on commit
    run_queue()
    assert types_received(receiver) == [VERIFICATION, "order.paid"]
    with pytest.raises(ValidationError, match="already verified"):
        endpoint_verify(endpoint, challenge=challenge, by="test")  # used once


def test_url_change_sends_a_new_challenge_other_edits_do_not(event_types, receiver, required):
    receiver.answer_challenges()
    endpoint = make_endpoint(url=receiver.url_for("/old"))
    run_queue()
    endpoint.refresh_from_db()
    assert endpoint.verified_at is not None
    endpoint_update(endpoint, by="test", name="renamed", timeout_seconds=5)
    endpoint.refresh_from_db()
    assert endpoint.verified_at is not None
    assert Event.objects.filter(event_type__name=VERIFICATION).count() == 1

    receiver.reset()
    receiver.default = Response(500, "not yet")
    endpoint_update(endpoint, by="test", url=receiver.url_for("/new"))
    endpoint.refresh_from_db()
    assert endpoint.awaiting_verification
    publish("order.paid", {"n": 2}, partner=endpoint.partner)
    run_queue()
    assert [(r.path, r.json()["type"]) for r in receiver.requests] == [("/new", VERIFICATION)]

    # "Verify again": a new challenge; the receiver now answers it; the order follows.
    receiver.answer_challenges()
    delivery = endpoint_verification_send(endpoint, by="admin:sam")
    assert delivery.endpoint_id == endpoint.pk
    run_queue()
    assert types_received(receiver) == [VERIFICATION, VERIFICATION, "order.paid"]
    endpoint.refresh_from_db()
    assert endpoint.verified_at is not None


def test_an_answer_to_a_replaced_challenge_verifies_nothing(event_types, receiver, required):
    receiver.default = Response(503, "")
    endpoint = make_endpoint(url=receiver.url_for())
    run_queue()
    (first,) = receiver.wait_for(1)
    endpoint_verification_send(endpoint, by="test")  # the first challenge is replaced
    with pytest.raises(ValidationError):
        endpoint_verify(endpoint, challenge=first.json()["data"]["challenge"], by="test")
    assert Endpoint.objects.get(pk=endpoint.pk).awaiting_verification


def test_turning_the_setting_on_holds_nothing_of_endpoints_never_challenged(
    event_types, receiver, settings
):
    endpoint = make_endpoint(url=receiver.url_for())  # created while the setting is off
    settings.WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION = True
    assert not Endpoint.objects.get(pk=endpoint.pk).awaiting_verification
    publish("order.paid", {"n": 1}, partner=endpoint.partner)
    run_queue()
    assert types_received(receiver) == ["order.paid"]


def test_turning_the_setting_off_releases_what_waits_for_a_challenge(
    event_types, receiver, settings
):
    settings.WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION = True
    receiver.default = Response(500, "")
    endpoint = make_endpoint(url=receiver.url_for())
    publish("order.paid", {"n": 1}, partner=endpoint.partner)
    run_queue()
    assert types_received(receiver) == [VERIFICATION]
    settings.WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION = False
    receiver.default = Response(200, "ok")
    assert dispatch.dispatch_due(now=timezone.now() + timedelta(seconds=5)) == 1
    run_queue()
    assert types_received(receiver) == [VERIFICATION, "order.paid"]


def test_the_challenge_goes_past_the_switch_and_an_open_circuit(event_types, receiver, required):
    from deliveries.models import CircuitState, EndpointHealth
    from endpoints.services import endpoint_disable

    receiver.answer_challenges()
    endpoint = make_endpoint(url=receiver.url_for())
    run_queue()
    EndpointHealth.objects.filter(pk=endpoint.pk).update(
        circuit_state=CircuitState.OPEN, circuit_retry_at=timezone.now() + timedelta(hours=1)
    )
    endpoint_disable(endpoint, by="test")
    endpoint_verification_send(endpoint, by="test")
    run_queue()
    assert types_received(receiver) == [VERIFICATION, VERIFICATION]
    assert Endpoint.objects.get(pk=endpoint.pk).verified_at is not None
