"""webhookhub_client.WebhookhubClient.send_event against a live webhookhub (gunicorn).

What a publisher sees: the events in the database, the values the client returns, the
exceptions it raises — and, through a misbehaving proxy, that its retries never publish
an event twice.
"""

import time
from datetime import UTC, datetime

import pytest
from webhookhub_client import (
    AuthenticationFailed,
    PayloadTooLarge,
    RateLimited,
    ValidationFailed,
    WebhookhubClient,
)

from endpoints.models import ApiToken
from endpoints.services import api_token_create
from events.models import Event
from tests.clients.proxy import DROP, RELAY, answer
from tests.factories import PartnerFactory, make_endpoint

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("ops")]


def recording(client: WebhookhubClient) -> list[float]:
    """The waits `client` makes between attempts (it still waits them)."""
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    client.sleep = sleep
    return waits


def test_send_event_records_the_event_for_the_partner(hub, publisher_token, event_types):
    acme = PartnerFactory(name="Acme")
    make_endpoint(acme, event_types=["order.*"])
    client = WebhookhubClient(hub.url, publisher_token)

    event = client.send_event(
        "order.paid",
        {"order": {"id": 1234, "total": 99.5}},
        partner=acme.public_id,
        source="shop",
        occurred_at=datetime(2026, 11, 23, 10, 15, tzinfo=UTC),
        tags=("eu",),
    )

    row = Event.objects.select_related("event_type", "partner").get()
    assert event.id == row.public_id and event.id.startswith("evt_")
    assert (row.event_type.name, row.payload, row.partner) == (
        "order.paid",
        {"order": {"id": 1234, "total": 99.5}},
        acme,
    )
    assert (row.source, row.tags, row.occurred_at) == (
        "shop",
        ["eu"],
        datetime(2026, 11, 23, 10, 15, tzinfo=UTC),
    )
    assert event.type == "order.paid" and event.data == {"order": {"id": 1234, "total": 99.5}}
    assert event.deliveries_count == 1 and event.created is True
    assert event.idempotency_key == row.idempotency_key and row.idempotency_key.startswith("whc_")


def test_the_same_key_again_returns_the_first_event(hub, publisher_token, event_types):
    client = WebhookhubClient(hub.url, publisher_token)
    first = client.send_event("order.paid", {"order": 1}, idempotency_key="order-1-paid")
    again = client.send_event("order.paid", {"order": 1}, idempotency_key="order-1-paid")
    assert (first.created, again.created) == (True, False)
    assert again.id == first.id
    assert Event.objects.count() == 1


@pytest.mark.parametrize(("key", "created"), [(None, True), ("order-7-paid", False)])
def test_a_dropped_answer_is_retried_with_the_same_key_and_publishes_once(
    hub, publisher_token, event_types, proxies, key, created
):
    """The first request is recorded by webhookhub, but its answer never reaches the
    client: the retry sends the same key and gets the recorded event back."""
    proxy = proxies(hub.url, plan=[DROP])
    client = WebhookhubClient(proxy.url, publisher_token)
    waits = recording(client)

    event = client.send_event("order.paid", {"order": 7}, idempotency_key=key)

    assert [r.action for r in proxy.requests] == [DROP, RELAY]
    first, retry = (r.json()["idempotency_key"] for r in proxy.requests)
    assert first == retry == event.idempotency_key
    assert len(waits) == 1
    row = Event.objects.get()
    assert (event.id, event.type) == (row.public_id, "order.paid")
    # A generated key is this call's alone, so the event is still the one it created;
    # with the caller's key a 200 may answer an earlier call, and says so.
    assert event.created is created


def test_a_5xx_is_retried_after_a_backoff(hub, publisher_token, event_types, proxies):
    proxy = proxies(hub.url, plan=[answer(503, b"<html>busy</html>"), answer(502, b"")])
    client = WebhookhubClient(proxy.url, publisher_token, backoff=0.05)
    waits = recording(client)

    event = client.send_event("order.paid", {"order": 8})

    assert [r.action for r in proxy.requests] == ["answer", "answer", RELAY]
    assert 0.025 <= waits[0] < 0.05 and 0.05 <= waits[1] < 0.1  # doubled, with jitter
    assert Event.objects.get().public_id == event.id


def test_field_errors_raise_validation_failed_at_once(hub, publisher_token, event_types, recorder):
    client = WebhookhubClient(hub.url, publisher_token, session=recorder.session)

    with pytest.raises(ValidationFailed) as unknown_type:
        client.send_event("order.nonexistent", {"order": 1})
    with pytest.raises(ValidationFailed) as bad_tag:
        client.send_event("order.paid", {"order": 1}, tags=["ok", ""])

    assert unknown_type.value.status_code == 400
    assert list(unknown_type.value.errors) == ["type"]
    assert "order.nonexistent" in unknown_type.value.errors["type"][0]
    assert unknown_type.value.detail.startswith("type: ")
    assert list(bad_tag.value.errors) == ["tags.1"]
    assert recorder.seen == [("POST", "/api/v1/events/", 400)] * 2  # neither retried
    assert not Event.objects.exists()


def test_wrong_tokens_raise_authentication_failed(hub, event_types):
    partner_token = api_token_create(
        role=ApiToken.Role.PARTNER, partner=PartnerFactory(), name="p", by="test"
    )[1]
    with pytest.raises(AuthenticationFailed) as unknown:
        WebhookhubClient(hub.url, "whk_not-a-token").send_event("order.paid", {})
    with pytest.raises(AuthenticationFailed) as partner:
        WebhookhubClient(hub.url, partner_token).send_event("order.paid", {})
    assert (unknown.value.status_code, unknown.value.detail) == (401, "Invalid token.")
    assert partner.value.status_code == 403 and partner.value.errors == {}
    assert not Event.objects.exists()


def test_a_payload_over_the_limit_raises_payload_too_large(hub, publisher_token, event_types):
    client = WebhookhubClient(hub.url, publisher_token)
    with pytest.raises(PayloadTooLarge) as failure:
        client.send_event("order.paid", {"blob": "x" * 300_000})
    assert failure.value.status_code == 413
    assert "larger than the limit" in failure.value.detail
    assert not Event.objects.exists()


def burst_until_limited(client: WebhookhubClient, waits: list[float]) -> list:
    """Publish 3 events right after a rate window opens (2 a second are allowed), so
    the third is over the limit; tries again in a later second if the window turned."""
    client.list_event_types()  # warm the worker up (reads have their own budget)
    for _ in range(3):
        time.sleep(1.02 - time.time() % 1)  # just after a whole second: a fresh window
        events = [client.send_event("order.paid", {"n": n}) for n in range(3)]
        if waits:
            return events
    raise AssertionError("three events in one second were never rate limited")


def test_429_waits_retry_after_then_publishes(start_hub, publisher_token, event_types):
    hub = start_hub(env={"WEBHOOKHUB_API_RATE_PUBLISH": "2/s"})
    client = WebhookhubClient(hub.url, publisher_token)
    waits = recording(client)

    events = burst_until_limited(client, waits)

    assert waits == [1.0]  # Retry-After: the second left in the window, rounded up
    assert [e.created for e in events] == [True, True, True]
    published = list(Event.objects.order_by("pk").values_list("public_id", flat=True))
    assert published[-3:] == [e.id for e in events]


def test_429_with_no_retries_left_raises_rate_limited(start_hub, publisher_token, event_types):
    hub = start_hub(env={"WEBHOOKHUB_API_RATE_PUBLISH": "1/day"})
    client = WebhookhubClient(hub.url, publisher_token, max_retries=0)
    client.send_event("order.paid", {"n": 1})

    with pytest.raises(RateLimited) as failure:
        client.send_event("order.paid", {"n": 2})

    assert failure.value.status_code == 429 and failure.value.retry_after >= 1
    assert Event.objects.count() == 1
