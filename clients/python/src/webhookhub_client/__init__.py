"""webhookhub's Python client: publish events (`WebhookhubClient`) and verify the
webhooks webhookhub sends (`verify`).

    from webhookhub_client import WebhookhubClient

    with WebhookhubClient("https://hooks.example.com", token) as hub:
        event = hub.send_event("order.paid", {"order": {"id": 1234}})
"""

from webhookhub_client._version import __version__
from webhookhub_client.client import WebhookhubClient, new_idempotency_key
from webhookhub_client.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    InvalidSignature,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ValidationFailed,
    WebhookhubError,
)
from webhookhub_client.models import Event, EventType
from webhookhub_client.verify import verify

__all__ = [
    "AuthenticationFailed",
    "ConnectionFailed",
    "Event",
    "EventType",
    "InvalidSignature",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "ValidationFailed",
    "WebhookhubClient",
    "WebhookhubError",
    "__version__",
    "new_idempotency_key",
    "verify",
]
