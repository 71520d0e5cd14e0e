"""webhookhub_client's `send_events` (the batch endpoint, chunked) and
`list_event_types` (every page) against a live webhookhub (gunicorn)."""

import pytest
from webhookhub_client import ConnectionFailed, ValidationFailed, WebhookhubClient

from events.models import Event, EventType
from tests.clients.proxy import DROP, RELAY

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("ops")]

BATCH = ("POST", "/api/v1/events/batch/")


def numbered(count: int, **extra) -> list[dict]:
    return [{"type": "order.paid", "data": {"n": n}, **extra} for n in range(count)]


def published_numbers() -> list[int]:
    return [data["n"] for data in Event.objects.order_by("pk").values_list("payload", flat=True)]


def test_250_events_go_in_3_requests_and_keep_their_order(
    hub, publisher_token, event_types, recorder
):
    client = WebhookhubClient(hub.url, publisher_token, session=recorder.session)

    events = client.send_events(numbered(250), chunk_size=100)

    assert recorder.seen == [(*BATCH, 201)] * 3
    assert published_numbers() == list(range(250))
    assert [e.id for e in events] == list(
        Event.objects.order_by("pk").values_list("public_id", flat=True)
    )
    assert [e.data["n"] for e in events] == list(range(250))
    assert all(e.created is True and e.idempotency_key.startswith("whc_") for e in events)


def test_a_refused_event_fails_its_chunk_and_says_where(hub, publisher_token, event_types):
    items = numbered(250)
    items[130]["type"] = "order.nonexistent"
    client = WebhookhubClient(hub.url, publisher_token)

    with pytest.raises(ValidationFailed) as failure:
        client.send_events(items, chunk_size=100)

    error = failure.value
    assert list(error.errors) == ["30.type"]  # the server's key: its place in the chunk
    assert (error.chunk, error.chunk_start) == (1, 100)
    assert list(error.item_errors) == [130]
    assert "order.nonexistent" in error.item_errors[130]["type"][0]
    # The first chunk stays published; nothing of the refused one, the third never sent.
    assert published_numbers() == list(range(100))
    assert [e.id for e in error.published] == list(
        Event.objects.order_by("pk").values_list("public_id", flat=True)
    )


def test_sending_the_same_keyed_events_again_publishes_nothing_new(
    hub, publisher_token, event_types
):
    items = [{**item, "idempotency_key": f"o-{n}"} for n, item in enumerate(numbered(5))]
    client = WebhookhubClient(hub.url, publisher_token)
    first = client.send_events(items)
    again = client.send_events(items)
    mixed = client.send_events(
        [*items[:2], {"type": "order.paid", "data": {"n": 5}, "idempotency_key": "o-5"}]
    )

    assert [e.created for e in first] == [True] * 5
    assert [e.created for e in again] == [False] * 5
    assert [e.id for e in again] == [e.id for e in first]
    assert [e.created for e in mixed] == [None, None, None]  # the server says how many, not which
    assert published_numbers() == [0, 1, 2, 3, 4, 5]


def test_a_dropped_chunk_is_sent_again_without_publishing_twice(
    hub, publisher_token, event_types, proxies
):
    proxy = proxies(hub.url, plan=[RELAY, DROP])
    client = WebhookhubClient(proxy.url, publisher_token, backoff=0.01)

    events = client.send_events(numbered(5), chunk_size=2)

    assert [r.action for r in proxy.requests] == [RELAY, DROP, RELAY, RELAY]
    dropped, resent = proxy.requests[1].json(), proxy.requests[2].json()
    assert dropped == resent  # the same events under the same keys
    assert published_numbers() == [0, 1, 2, 3, 4]
    assert [e.data["n"] for e in events] == [0, 1, 2, 3, 4]
    assert all(e.created for e in events)


def test_a_chunk_that_never_got_through_leaves_the_earlier_ones_published(
    hub, publisher_token, event_types, proxies
):
    proxy = proxies(hub.url, plan=[RELAY, DROP, DROP])
    client = WebhookhubClient(proxy.url, publisher_token, max_retries=1, backoff=0.01)

    with pytest.raises(ConnectionFailed) as failure:
        client.send_events(numbered(5), chunk_size=2)

    assert (failure.value.chunk, failure.value.chunk_start) == (1, 2)
    assert [e.data["n"] for e in failure.value.published] == [0, 1]
    # The dropped chunk reached the server: sending the list again (with its own keys)
    # would be safe; this one had generated keys, so its events are there once.
    assert published_numbers() == [0, 1, 2, 3]


def test_list_event_types_follows_every_page(hub, publisher_token, event_types, recorder):
    EventType.objects.filter(name="order.refunded").update(archived_at="2026-11-01T00:00:00Z")
    client = WebhookhubClient(hub.url, publisher_token, session=recorder.session)

    active = client.list_event_types(page_size=2)
    archived = client.list_event_types(archived=True)

    assert [t.name for t in active] == sorted(
        EventType.objects.filter(archived_at__isnull=True).values_list("name", flat=True)
    )
    # order.paid, shipment.moved and webhookhub's own types (the catalog fixture's).
    assert len(active) >= 6 and "order.paid" in {t.name for t in active}
    assert [(t.name, t.archived) for t in archived] == [("order.refunded", True)]
    pages = -(-len(active) // 2) + 1  # every page of 2, then the archived list
    assert [path.split("?")[0] for _, path, _ in recorder.seen] == ["/api/v1/event-types/"] * pages
