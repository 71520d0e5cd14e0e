"""What can go wrong when publishing, as exceptions that carry webhookhub's answer.

Every 4xx and 5xx of the API has the body `{"detail": "...", "errors": {field: [messages]}}`;
each exception keeps both (`detail`, `errors`) and the HTTP status (`status_code`, None when
no answer came). `InvalidSignature` is the receiving side's error and stands apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

    from webhookhub_client.models import Event


class WebhookhubError(Exception):
    """Base of every error raised while talking to webhookhub.

    `detail` is the API's one-sentence summary; `errors` maps each bad field to its
    messages (`{}` when the problem is not about a field). `send_events` also sets
    `chunk` (which request of the batch failed, from 0), `chunk_start` (the position, in
    the list given, of that chunk's first event) and `published` (the events of earlier
    chunks, which stay published).
    """

    def __init__(
        self,
        detail: str,
        *,
        status_code: int | None = None,
        errors: Mapping[str, list[str]] | None = None,
        response: requests.Response | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code
        self.errors: dict[str, list[str]] = dict(errors or {})
        self.response = response
        self.chunk: int | None = None
        self.chunk_start: int | None = None
        self.published: list[Event] = []

    def __str__(self) -> str:
        where = ""
        if self.chunk is not None:
            where = f" (batch chunk {self.chunk}, from event {self.chunk_start})"
        status = f"{self.status_code} " if self.status_code is not None else ""
        return f"{status}{self.detail}{where}"

    @property
    def item_errors(self) -> dict[int, dict[str, list[str]]]:
        """For a refused batch chunk: the errors per event, keyed by the event's position
        in the list given to `send_events` (the API's `3.type` in chunk 2 of 100 becomes
        `{203: {"type": [...]}}`; an error about the whole item has the field `""`)."""
        if self.chunk_start is None:
            return {}
        out: dict[int, dict[str, list[str]]] = {}
        for key, messages in self.errors.items():
            head, _, field = key.partition(".")
            if head.isdigit():
                out.setdefault(self.chunk_start + int(head), {})[field] = messages
        return out


class ValidationFailed(WebhookhubError):
    """400: the input was refused; `errors` names the fields (`data`, `3.type` in a batch)."""


class AuthenticationFailed(WebhookhubError):
    """401: no valid token (invalid, revoked, expired); 403: this token may not do this
    (e.g. a partner token publishing)."""


class NotFound(WebhookhubError):
    """404: no such object or path (check `base_url`)."""


class PayloadTooLarge(WebhookhubError):
    """413: the request body or the event is over the server's size limit."""


class RateLimited(WebhookhubError):
    """429, still after the client's retries (or with a wait longer than it may wait).

    `retry_after` is the server's `Retry-After` in seconds (None if it sent none)."""

    def __init__(self, detail: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after


class ServerError(WebhookhubError):
    """5xx, still after the client's retries."""


class ConnectionFailed(WebhookhubError):
    """No answer: the connection failed, was cut, or timed out, still after the retries.

    With `send_event`'s idempotency key the event may or may not have been recorded;
    sending it again with the same key is safe."""


class InvalidSignature(Exception):
    """A received webhook is not authentic: a signature, the timestamp or a header is
    missing, malformed, outside the tolerance, or signed with another secret."""


def error_for(response: requests.Response, *, retry_after: float | None = None) -> WebhookhubError:
    """The exception for an API answer that is not a success."""
    status = response.status_code
    detail, errors = _parse(response)
    kwargs: dict[str, Any] = {"status_code": status, "errors": errors, "response": response}
    if status == 429:
        return RateLimited(detail, retry_after=retry_after, **kwargs)
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else WebhookhubError
    return cls(detail, **kwargs)


_BY_STATUS: dict[int, type[WebhookhubError]] = {
    400: ValidationFailed,
    401: AuthenticationFailed,
    403: AuthenticationFailed,
    404: NotFound,
    413: PayloadTooLarge,
}


def _parse(response: requests.Response) -> tuple[str, dict[str, list[str]]]:
    """`detail` and `errors` from the API's error body; something readable from any other
    body (a proxy's HTML page, an empty 502)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        errors = body.get("errors")
        if not isinstance(errors, dict):
            errors = {}
        return body["detail"], {
            str(k): [str(m) for m in v] if isinstance(v, list) else [str(v)]
            for k, v in errors.items()
        }
    text = " ".join(response.text.split())[:200]
    reason = response.reason or "HTTP error"
    return (f"{reason}: {text}" if text else str(reason)), {}
