"""Field rules an endpoint and its subscriptions must satisfy, shared by the admin forms,
the API serializers and the services (through `Model.clean()`).

Each rule raises `ValidationError({field: message})` so every surface can show the
message on the field it is about.
"""

import re

from django.conf import settings
from django.core.exceptions import ValidationError

from deliveries.policy import PolicyError, RetryPolicy
from endpoints.url_safety import UnsafeURLError, check_url
from events.filters import FilterError, validate_filter

EVENT_TYPE_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")
SUBSCRIPTION_PATTERN = re.compile(r"^(\*|[a-z0-9_-]+(\.[a-z0-9_-]+)*(\.\*)?)$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
# Headers a partner's custom headers may not set: the signature, transport and auth.
PROTECTED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
        "content-length",
        "host",
        "user-agent",
        "authorization",
        "transfer-encoding",
        "connection",
    }
)
MAX_HEADERS = 20


def validate_url(url: str) -> None:
    try:
        check_url(
            url,
            allow_private=settings.WEBHOOKHUB_ALLOW_PRIVATE_URLS,
            require_https=settings.WEBHOOKHUB_REQUIRE_HTTPS,
        )
    except UnsafeURLError as exc:
        raise ValidationError({"url": str(exc)}) from None


def validate_headers(headers) -> None:
    if not isinstance(headers, dict):
        raise ValidationError({"headers": "Headers must be an object of name: value."})
    if len(headers) > MAX_HEADERS:
        raise ValidationError({"headers": f"At most {MAX_HEADERS} custom headers."})
    for name, value in headers.items():
        if not HEADER_NAME.match(name):
            raise ValidationError({"headers": f"{name!r} is not a valid header name."})
        if name.lower() in PROTECTED_HEADERS or name.lower().startswith("webhook-"):
            raise ValidationError(
                {"headers": f"{name} is set by webhookhub and cannot be overridden."}
            )
        if not isinstance(value, str) or len(value) > 1000 or any(c in value for c in "\r\n\0"):
            raise ValidationError(
                {
                    "headers": f"The value of {name} must be a single-line string "
                    "of at most 1000 characters."
                }
            )


def validate_retry_policy(policy) -> None:
    try:
        RetryPolicy.from_dict(policy or None, field="retry_policy")
    except PolicyError as exc:
        raise ValidationError({"retry_policy": str(exc)}) from None


def validate_filter_field(spec, field: str = "filter") -> None:
    try:
        validate_filter(spec, field=field)
    except FilterError as exc:
        raise ValidationError({"filter": str(exc)}) from None


def validate_endpoint_fields(endpoint) -> None:
    """Every rule, so that each bad field gets its message at once."""
    errors: dict[str, list] = {}
    for check, value in (
        (validate_url, endpoint.url),
        (validate_headers, endpoint.headers),
        (validate_retry_policy, endpoint.retry_policy),
        (validate_filter_field, endpoint.filter),
    ):
        try:
            check(value)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                errors.setdefault(field, []).extend(messages)
    if errors:
        raise ValidationError(errors)


def validate_subscription_pattern(pattern: str) -> None:
    """A subscription names a known event type, or is a wildcard (`order.*`, `*`)."""
    from events.models import EventType

    if not isinstance(pattern, str) or not SUBSCRIPTION_PATTERN.match(pattern):
        raise ValidationError(
            {"event_type": f"{pattern!r} is not an event type name, `prefix.*` or `*`."}
        )
    if "*" in pattern:
        return
    if not EventType.objects.filter(name=pattern, archived_at__isnull=True).exists():
        raise ValidationError({"event_type": f"Unknown event type {pattern!r}."})


def validate_subscription_fields(subscription) -> None:
    validate_subscription_pattern(subscription.event_type)
    validate_filter_field(subscription.filter)
