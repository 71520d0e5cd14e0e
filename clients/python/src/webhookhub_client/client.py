"""`WebhookhubClient`: publish events to a webhookhub over its REST API.

Promises:

* An event is never published twice by the client's own retries. Every event sent
  carries an idempotency key — yours, or one generated (`whc_<uuid4 hex>`) before the
  first attempt and reused by every retry — and webhookhub answers a repeated key with
  the first event instead of recording another.
* Retried: connection errors and timeouts, 5xx, and 429 after the `Retry-After` the
  server gave; at most `max_retries` times, with exponential backoff and jitter when the
  server named no wait. Other 4xx are never retried: they are raised at once.
* Every failure is a `WebhookhubError` subclass carrying the API's `detail` and
  `errors` and the HTTP status (see `webhookhub_client.errors`).
"""

from __future__ import annotations

import json
import random as _random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from webhookhub_client._version import __version__
from webhookhub_client.errors import ConnectionFailed, WebhookhubError, error_for
from webhookhub_client.models import Event, EventType
from webhookhub_client.retries import backoff_delay, retry_after_seconds

DEFAULT_USER_AGENT = f"webhookhub-client/{__version__}"
IDEMPOTENCY_KEY_PREFIX = "whc_"
# The server's defaults: WEBHOOKHUB_API_MAX_BATCH_EVENTS and WEBHOOKHUB_API_MAX_BATCH_BYTES.
DEFAULT_CHUNK_SIZE = 100
DEFAULT_CHUNK_BYTES = 1024 * 1024
EVENTS_PATH = "/api/v1/events/"
BATCH_PATH = "/api/v1/events/batch/"
EVENT_TYPES_PATH = "/api/v1/event-types/"
# Failures after which the request may be sent again: no answer, or a cut-off one.
_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


def new_idempotency_key() -> str:
    """A key no other call uses: `whc_` and 32 hex digits of a uuid4."""
    return IDEMPOTENCY_KEY_PREFIX + uuid.uuid4().hex


class WebhookhubClient:
    """A publisher's connection to one webhookhub (`base_url`, e.g.
    `https://hooks.example.com`) with a publisher token (`whk_…`).

    `timeout` (seconds) bounds connecting and each read of one attempt. `max_retries`
    is how many times a failed attempt is repeated (0: never). `backoff` is the first
    wait, doubled per retry up to 30 s, with jitter. A 429 waits the server's
    `Retry-After`, unless that is longer than `max_retry_after` seconds: then
    `RateLimited` is raised at once rather than blocking the caller. `session` is used
    as given (and not closed by `close()`); by default the client makes its own.

    Thread-safety is that of the `requests.Session`: share a client between threads
    only if you share sessions that way already.
    """

    # Replaceable per instance (tests record the waits; a caller may add metrics).
    sleep: Callable[[float], None] = staticmethod(time.sleep)
    random: Callable[[], float] = staticmethod(_random.random)

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 60,
        session: requests.Session | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        scheme = urlsplit(base_url).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"base_url must start with http:// or https://, not {base_url!r}.")
        if not token:
            raise ValueError("token is empty: give a publisher token (whk_…).")
        if max_retries < 0:
            raise ValueError("max_retries cannot be negative.")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self.user_agent = user_agent
        self._token = token
        self._own_session = session is None
        self.session = session if session is not None else requests.Session()

    def __repr__(self) -> str:
        return f"WebhookhubClient({self.base_url!r})"  # never the token

    def __enter__(self) -> WebhookhubClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session the client made (a session you passed stays open)."""
        if self._own_session:
            self.session.close()

    # --- publishing -----------------------------------------------------------------

    def send_event(
        self,
        type: str,
        data: Mapping[str, Any],
        *,
        partner: str | None = None,
        idempotency_key: str | None = None,
        occurred_at: datetime | str | None = None,
        tags: Iterable[str] = (),
        source: str | None = None,
    ) -> Event:
        """Publish one event (`POST /api/v1/events/`) and return it as recorded.

        `type` is a catalog name (`order.paid`); `data` a JSON-serialisable object.
        `partner` (`prt_…`) limits it to that partner's endpoints; without it, it is a
        broadcast. Without `idempotency_key` one is generated, so that retries cannot
        publish twice; give your own (e.g. `order-1234-paid`) to make your own repeats
        safe as well: the same key again returns the first event with `created=False`.
        `occurred_at`: a datetime (naive is taken as UTC) or an ISO 8601 string.

        Raises a `WebhookhubError`: `ValidationFailed` naming the field,
        `AuthenticationFailed`, `PayloadTooLarge`, `RateLimited`, `ServerError` or
        `ConnectionFailed` (after the retries).
        """
        item, generated = _event_item(
            type=type,
            data=data,
            partner=partner,
            idempotency_key=idempotency_key,
            occurred_at=occurred_at,
            tags=tags,
            source=source,
        )
        response = self._request("POST", EVENTS_PATH, body=_encode(item))
        # A generated key is known to this call only: a 200 for it means an earlier
        # attempt of this call got through, so the event is still this call's.
        created = response.status_code == 201 or generated
        return Event.from_api(self._json(response), created=created)

    def send_events(
        self,
        events: Iterable[Mapping[str, Any]],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> list[Event]:
        """Publish many events through `POST /api/v1/events/batch/`; return them in order.

        Each item is a mapping with `send_event`'s arguments: `type`, `data`, and
        optionally `partner`, `idempotency_key`, `occurred_at`, `tags`, `source`. An item
        without `idempotency_key` gets a generated one first, so a retried chunk never
        publishes twice. The list is sent in chunks of at most `chunk_size` events and
        `chunk_bytes` bytes (the server's limits, 100 events and 1 MB by default: set
        these to what your webhookhub is configured with).

        All or nothing **per chunk**: if the server refuses one event of a chunk, nothing
        of that chunk is recorded and the error is raised — but earlier chunks stay
        published and later ones are not sent. The exception says where: `chunk`,
        `chunk_start` (position of its first event in `events`), `published` (the events
        of the earlier chunks) and, for `ValidationFailed`, `item_errors` keyed by
        position in `events` (`errors` keeps the server's keys, relative to the chunk).
        Sending the same list again is safe when every item has its own key.
        """
        if chunk_size < 1 or chunk_bytes < 1:
            raise ValueError("chunk_size and chunk_bytes must be positive.")
        items = [_event_item(**_item_arguments(n, event)) for n, event in enumerate(events)]
        published: list[Event] = []
        for number, (start, chunk) in enumerate(_chunks(items, chunk_size, chunk_bytes)):
            body = b"[" + b",".join(encoded for encoded, _ in chunk) + b"]"
            try:
                response = self._request("POST", BATCH_PATH, body=body)
                answer = self._json(response)
                records = answer["events"]
                new = answer["created"]
            except WebhookhubError as exc:
                exc.chunk, exc.chunk_start, exc.published = number, start, published
                raise
            for (_, generated), raw in zip(chunk, records, strict=True):
                created: bool | None
                if generated or new == len(chunk):
                    created = True
                elif new == 0:
                    created = False
                else:
                    created = None  # some of the chunk were repeats, the server says not which
                published.append(Event.from_api(raw, created=created))
        return published

    def list_event_types(self, *, archived: bool = False, page_size: int = 100) -> list[EventType]:
        """The event type catalog, by name, every page (`archived=True`: the archived
        types instead of the active ones). `page_size` is 1 to 100."""
        params: dict[str, str] = {"limit": str(page_size)}
        if archived:
            params["archived"] = "true"
        types: list[EventType] = []
        while True:
            page = self._json(self._request("GET", EVENT_TYPES_PATH, params=params))
            types.extend(EventType.from_api(raw) for raw in page["results"])
            if not page.get("next"):
                return types
            # Only the query of `next` is used: the token goes to `base_url`, never to a
            # host or scheme the server put in a link (e.g. behind a proxy).
            params = dict(parse_qsl(urlsplit(page["next"]).query))

    # --- one request, with retries ---------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """A 2xx response, after at most `max_retries` retries; else the error."""
        headers = {
            "Authorization": f"Bearer {self._token}",
            "User-Agent": self.user_agent,
            "Accept": "application/json",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        url = self.base_url + path
        retry = 0
        while True:
            try:
                response = self.session.request(
                    method,
                    url,
                    data=body,
                    params=params,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,  # a redirected POST would turn into a GET
                )
            except _TRANSPORT_ERRORS as exc:
                if retry >= self.max_retries:
                    raise ConnectionFailed(f"{method} {url} failed: {exc}") from exc
                delay = self._backoff(retry + 1)
            else:
                if response.status_code < 300:
                    return response
                wait = retry_after_seconds(response.headers.get("Retry-After"), now=time.time())
                error = self._error(response, retry_after=wait)
                if not _retryable(response.status_code) or retry >= self.max_retries:
                    raise error
                if wait is None:
                    delay = self._backoff(retry + 1)
                elif wait > self.max_retry_after:
                    raise error  # waiting that long inside a call helps nobody: say so now
                else:
                    delay = wait
            retry += 1
            self.sleep(delay)

    @staticmethod
    def _error(response: requests.Response, *, retry_after: float | None) -> WebhookhubError:
        if 300 <= response.status_code < 400:
            location = response.headers.get("Location", "")
            return WebhookhubError(
                f"Redirected to {location!r}: use that address as base_url.",
                status_code=response.status_code,
                response=response,
            )
        return error_for(response, retry_after=retry_after)

    def _backoff(self, retry: int) -> float:
        return backoff_delay(retry, self.backoff, random=self.random)

    @staticmethod
    def _json(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise WebhookhubError(
                f"The answer from {response.url} is not JSON: is base_url a webhookhub?",
                status_code=response.status_code,
                response=response,
            ) from None


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _event_item(
    *,
    type: str,
    data: Mapping[str, Any],
    partner: str | None = None,
    idempotency_key: str | None = None,
    occurred_at: datetime | str | None = None,
    tags: Iterable[str] = (),
    source: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """The API's JSON for one event and whether its idempotency key was generated."""
    if isinstance(tags, str):
        raise TypeError("tags must be a list of strings, not one string.")
    generated = idempotency_key is None
    item: dict[str, Any] = {
        "type": type,
        "data": dict(data) if isinstance(data, Mapping) else data,
        "idempotency_key": new_idempotency_key() if generated else idempotency_key,
    }
    if partner is not None:
        item["partner"] = partner
    if source is not None:
        item["source"] = source
    if occurred_at is not None:
        item["occurred_at"] = (
            occurred_at.isoformat() if isinstance(occurred_at, datetime) else occurred_at
        )
    tags = list(tags)
    if tags:
        item["tags"] = tags
    return item, generated


ITEM_FIELDS = frozenset(
    {"type", "data", "partner", "idempotency_key", "occurred_at", "tags", "source"}
)


def _item_arguments(position: int, event: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(event, Mapping):
        raise TypeError(f"Event {position} is not a mapping with 'type' and 'data': {event!r}")
    unknown = sorted(set(event) - ITEM_FIELDS)
    if unknown:
        raise TypeError(f"Event {position} has unknown fields {unknown}.")
    missing = [name for name in ("type", "data") if name not in event]
    if missing:
        raise TypeError(f"Event {position} has no {' or '.join(missing)}.")
    return dict(event)


def _encode(item: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities are refused here (JSON has none)."""
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _chunks(
    items: Sequence[tuple[dict[str, Any], bool]], size: int, max_bytes: int
) -> Iterator[tuple[int, list[tuple[bytes, bool]]]]:
    """`(start, [(encoded item, generated key), ...])` runs of at most `size` items whose
    JSON array is at most `max_bytes` (an item larger than that goes alone: the server
    answers it with a 413)."""
    chunk: list[tuple[bytes, bool]] = []
    start, length = 0, 1  # a JSON array of n items: their bytes, n - 1 commas, 2 brackets
    for index, (item, generated) in enumerate(items):
        encoded = _encode(item)
        if chunk and (len(chunk) >= size or length + 1 + len(encoded) > max_bytes):
            yield start, chunk
            chunk, start, length = [], index, 1
        chunk.append((encoded, generated))
        length += len(encoded) + 1
    if chunk:
        yield start, chunk
