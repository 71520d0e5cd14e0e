"""The client's retry rules and error mapping, against canned HTTP answers (no
webhookhub, no database): a proxy in front of nothing answers what the plan says."""

import pytest
from webhookhub_client import (
    ConnectionFailed,
    NotFound,
    RateLimited,
    ServerError,
    ValidationFailed,
    WebhookhubClient,
    WebhookhubError,
)
from webhookhub_client.client import _chunks, _encode, _event_item
from webhookhub_client.retries import backoff_delay, retry_after_seconds

from tests.clients.proxy import answer
from tests.ops.conftest import free_port

NOWHERE = "http://127.0.0.1:9"  # the proxy's upstream: never reached by a canned answer
TOKEN = "whk_test"


def quiet(client: WebhookhubClient) -> list[float]:
    waits: list[float] = []
    client.sleep = waits.append
    return waits


def test_5xx_after_the_last_retry_raises_server_error(proxies):
    refusal = answer(500, {"detail": "Server error.", "errors": {}})
    proxy = proxies(NOWHERE, plan=[refusal, refusal])
    client = WebhookhubClient(proxy.url, TOKEN, max_retries=1)
    waits = quiet(client)

    with pytest.raises(ServerError) as failure:
        client.send_event("order.paid", {"order": 9})

    assert (failure.value.status_code, failure.value.detail) == (500, "Server error.")
    assert len(proxy.requests) == 2 and len(waits) == 1


def test_a_503_with_retry_after_waits_that_long(proxies):
    busy = answer(503, b"", {"Retry-After": "2"})
    proxy = proxies(NOWHERE, plan=[busy, answer(201, {"id": "evt_1", "type": "order.paid"})])
    client = WebhookhubClient(proxy.url, TOKEN)
    waits = quiet(client)
    assert client.send_event("order.paid", {}).id == "evt_1"
    assert waits == [2.0]


def test_a_retry_after_longer_than_allowed_is_raised_at_once(proxies):
    limited = answer(429, {"detail": "Slow down.", "errors": {}}, {"Retry-After": "3600"})
    proxy = proxies(NOWHERE, plan=[limited])
    client = WebhookhubClient(proxy.url, TOKEN, max_retry_after=30)
    waits = quiet(client)

    with pytest.raises(RateLimited) as failure:
        client.send_event("order.paid", {"n": 1})

    assert (failure.value.retry_after, failure.value.detail, waits) == (3600, "Slow down.", [])


@pytest.mark.parametrize(
    ("status", "body", "error", "detail"),
    [
        (409, {"detail": "In flight.", "errors": {}}, WebhookhubError, "In flight."),
        (404, b"<h1>Not\n Found</h1>", NotFound, "Proxy: <h1>Not Found</h1>"),
        (400, b"", ValidationFailed, "Proxy"),
    ],
)
def test_other_4xx_are_raised_at_once_whatever_their_body(proxies, status, body, error, detail):
    proxy = proxies(NOWHERE, plan=[answer(status, body)])
    with pytest.raises(error) as failure:
        WebhookhubClient(proxy.url, TOKEN).send_event("order.paid", {})
    assert type(failure.value) is error
    assert (failure.value.status_code, failure.value.detail) == (status, detail)
    assert failure.value.errors == {} and len(proxy.requests) == 1


def test_a_redirect_is_an_error_not_a_get(proxies):
    moved = answer(301, b"", {"Location": "https://hooks.example.com/api/v1/events/"})
    proxy = proxies(NOWHERE, plan=[moved])
    with pytest.raises(WebhookhubError, match="use that address as base_url") as failure:
        WebhookhubClient(proxy.url, TOKEN).send_event("order.paid", {})
    assert failure.value.status_code == 301 and len(proxy.requests) == 1


def test_no_server_raises_connection_failed_after_the_retries():
    client = WebhookhubClient(f"http://127.0.0.1:{free_port()}", TOKEN, max_retries=2)
    waits = quiet(client)
    with pytest.raises(ConnectionFailed) as failure:
        client.send_event("order.paid", {})
    assert failure.value.status_code is None and len(waits) == 2


def test_settings_that_cannot_work_are_refused_up_front():
    with pytest.raises(ValueError, match="http:// or https://"):
        WebhookhubClient("hooks.example.com", TOKEN)
    with pytest.raises(ValueError, match="token"):
        WebhookhubClient("https://hooks.example.com", "")
    with pytest.raises(TypeError, match="list of strings"):
        WebhookhubClient("https://hooks.example.com", TOKEN).send_event("a.b", {}, tags="eu")
    hub = WebhookhubClient("https://hooks.example.com", TOKEN)
    with pytest.raises(TypeError, match="Event 1 has no data"):
        hub.send_events([{"type": "a.b", "data": {}}, {"type": "a.b"}])
    with pytest.raises(TypeError, match=r"Event 0 has unknown fields \['colour'\]"):
        hub.send_events([{"type": "a.b", "data": {}, "colour": "red"}])
    assert TOKEN not in repr(hub)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("1", 1.0),
        (" 30 ", 30.0),
        ("Thu, 01 Jan 1970 00:01:40 GMT", 60.0),  # an HTTP date, 60 s after `now`
        ("Thu, 01 Jan 1970 00:00:10 GMT", 0.0),  # in the past: no wait
        ("-1", None),
        ("soon", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header, seconds):
    assert retry_after_seconds(header, now=40.0) == seconds


@pytest.mark.parametrize(
    ("retry", "low", "high"),
    [(1, 0.25, 0.5), (2, 0.5, 1.0), (3, 1.0, 2.0), (10, 15.0, 30.0)],  # capped at 30 s
)
def test_backoff_doubles_per_retry_with_jitter(retry, low, high):
    assert backoff_delay(retry, 0.5, random=lambda: 0.0) == low
    assert backoff_delay(retry, 0.5, random=lambda: 0.999999) == pytest.approx(high, rel=1e-5)


def test_chunks_keep_to_the_count_and_the_byte_limit():
    items = [_event_item(type="order.paid", data={"n": "x" * 50}) for _ in range(7)]
    size = len(_encode(items[0][0]))  # every item encodes to as many bytes

    by_count = [(start, len(chunk)) for start, chunk in _chunks(items, 3, 10**6)]
    # An array of two items is 2 * size + 3 bytes: a limit one byte short splits them.
    by_bytes = [(start, len(chunk)) for start, chunk in _chunks(items, 100, 2 * size + 2)]
    exact = [(start, len(chunk)) for start, chunk in _chunks(items, 100, 2 * size + 3)]

    assert by_count == [(0, 3), (3, 3), (6, 1)]
    assert by_bytes == [(n, 1) for n in range(7)]
    assert exact == [(0, 2), (2, 2), (4, 2), (6, 1)]
