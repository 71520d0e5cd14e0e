"""Field rules an endpoint and its subscriptions must satisfy, shared by the admin forms,
the API serializers and the services (through `Model.clean()`).

Each rule raises `ValidationError({field: message})` so every surface can show the
message on the field it is about.
"""

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from deliveries.policy import PolicyError, RetryPolicy
from endpoints import header_rules
from endpoints.header_rules import ValueProblem
from endpoints.url_safety import UnsafeURLError, check_url
from events.filters import FilterError, validate_filter
from events.models import EventType

SUBSCRIPTION_PATTERN = re.compile(r"^(\*|[a-z0-9_-]+(\.[a-z0-9_-]+)*(\.\*)?)$")


def validate_url(url: str) -> None:
    try:
        check_url(
            url,
            allow_private=settings.WEBHOOKHUB_ALLOW_PRIVATE_URLS,
            require_https=settings.WEBHOOKHUB_REQUIRE_HTTPS,
        )
    except UnsafeURLError as exc:
        raise ValidationError({"url": str(exc)}) from None


def validate_headers(headers, *, allow_masked: bool = False) -> None:
    """Custom headers: valid, unprotected names (each once) with sendable values.

    `allow_masked` lets values in their masked form (`••••1234`) pass: the API checks
    the request before the service puts the stored values back in their place
    (`header_rules.keep_masked`); the model's own check never allows them.
    """
    if not isinstance(headers, dict):
        raise ValidationError({"headers": _("Headers must be an object of name: value.")})
    if len(headers) > header_rules.MAX_HEADERS:
        raise ValidationError(
            {"headers": _("At most %(max)d custom headers.") % {"max": header_rules.MAX_HEADERS}}
        )
    seen = set()
    for name, value in headers.items():
        if not header_rules.is_valid_name(name):
            raise ValidationError(
                {"headers": _("%(name)r is not a valid header name.") % {"name": name}}
            )
        if header_rules.is_protected(name):
            raise ValidationError(
                {
                    "headers": _("%(name)s is set by webhookhub and cannot be overridden.")
                    % {"name": name}
                }
            )
        if name.lower() in seen:
            raise ValidationError(
                {
                    "headers": _("%(name)s is given twice (header names ignore case).")
                    % {"name": name}
                }
            )
        seen.add(name.lower())
        if header_rules.is_masked(value):
            if allow_masked:
                continue
            raise ValidationError(
                {
                    "headers": _(
                        "The value of %(name)s is masked (%(value)s) but is not the masked "
                        "form of its current value: send the whole value."
                    )
                    % {"name": name, "value": value}
                }
            )
        validate_header_value(value, field="headers", header=name)


def validate_auth_token(token) -> None:
    """The bearer token goes out as `Authorization: Bearer <token>`: a header value.

    Checked where a token is set (the API, `endpoint_create` / `endpoint_update`), not by
    `Endpoint.clean()`: the admin form does not edit the token, and a token stored before
    this rule must not make every other change to its endpoint fail.
    """
    if token:
        validate_header_value(
            token,
            field="auth_token",
            header="Authorization (auth_token)",
            max_length=header_rules.MAX_TOKEN_LENGTH,
        )


def validate_header_value(
    value, *, field: str, header: str, max_length: int = header_rules.MAX_VALUE_LENGTH
) -> None:
    """RFC 9110 field-value (`header_rules.value_problem`), as a message on `field`
    naming `header`."""
    problem = header_rules.value_problem(value, max_length=max_length)
    if problem is None:
        return
    kind, char = problem
    allowed = _("header values are visible ASCII characters, with spaces and tabs inside")
    messages = {
        ValueProblem.NOT_TEXT: _("The value of %(header)s must be a string."),
        ValueProblem.TOO_LONG: _("The value of %(header)s is longer than %(max)d characters."),
        ValueProblem.CONTROL: _(
            "The value of %(header)s contains a control character (%(char)s): %(allowed)s."
        ),
        ValueProblem.NOT_ASCII: _(
            "The value of %(header)s contains %(char)s, which is not ASCII: %(allowed)s."
        ),
        ValueProblem.EDGE_WHITESPACE: _(
            "The value of %(header)s starts or ends with whitespace: %(allowed)s."
        ),
    }
    params = {"header": header, "max": max_length, "char": char, "allowed": allowed}
    raise ValidationError({field: messages[kind] % params})


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
    if not isinstance(pattern, str) or not SUBSCRIPTION_PATTERN.fullmatch(pattern):
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
