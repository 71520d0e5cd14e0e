"""One error shape for every 4xx: `{"detail": "...", "errors": {field: [messages]}}`.

`detail` is one sentence naming the problem; `errors` maps each bad field to its
messages (empty when the problem is not about a field). Nested fields are dotted
(`retry_policy.max_attempts`, `event_types.2`); the items of a batch are prefixed by
their index (`3.type`). Django `ValidationError`s raised by services become 400s with
the same shape (413 when the payload is too large), so a rule is written once, in the
service or model, and every surface shows it the same way.
"""

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, status
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

PAYLOAD_TOO_LARGE = "payload_too_large"
# A service's refusal to send an event whose payload was erased: a 409, not a 400.
EXPUNGED = "expunged"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = PAYLOAD_TOO_LARGE

    def __init__(self, limit: int | None = None, detail: str | None = None):
        if detail is None:
            detail = (
                _("The request body is larger than the limit of %(limit)s bytes.")
                % {"limit": limit}
                if limit
                else _("The payload is too large.")
            )
        super().__init__(detail)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = _("The object is not in a state that allows this.")
    default_code = "conflict"


def from_django(exc: DjangoValidationError) -> exceptions.APIException:
    """A service's ValidationError as the API exception it stands for."""
    if hasattr(exc, "error_dict"):
        errors = {
            (api_settings.NON_FIELD_ERRORS_KEY if field == NON_FIELD_ERRORS else field): [
                message for error in field_errors for message in error.messages
            ]
            for field, field_errors in exc.error_dict.items()
        }
        codes = {error.code for field_errors in exc.error_dict.values() for error in field_errors}
    else:
        errors = {api_settings.NON_FIELD_ERRORS_KEY: exc.messages}
        codes = {error.code for error in exc.error_list}
    if PAYLOAD_TOO_LARGE in codes:
        return PayloadTooLarge(detail=_summary(flatten(errors)))
    if EXPUNGED in codes:
        return Conflict(" ".join(message for messages in errors.values() for message in messages))
    return exceptions.ValidationError(errors)


def flatten(data, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error structure as `{dotted.field: [messages]}`."""
    out: dict[str, list[str]] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, list) and any(isinstance(item, dict | list) for item in data):
        for index, item in enumerate(data):
            if item:
                out.update(flatten(item, f"{prefix}.{index}" if prefix else str(index)))
    elif isinstance(data, list):
        out[prefix or api_settings.NON_FIELD_ERRORS_KEY] = [str(item) for item in data]
    else:
        out[prefix or api_settings.NON_FIELD_ERRORS_KEY] = [str(data)]
    return out


def _summary(errors: dict[str, list[str]]) -> str:
    for field, messages in errors.items():
        if messages:
            if field == api_settings.NON_FIELD_ERRORS_KEY or messages[0].startswith(field):
                return messages[0]
            return f"{field}: {messages[0]}"
    return str(_("Invalid input."))


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = from_django(exc)
    elif isinstance(exc, RequestDataTooBig):
        # A body Django would not read (DATA_UPLOAD_MAX_MEMORY_SIZE): the API's 413,
        # not a logged "suspicious operation" and an HTML 400.
        exc = PayloadTooLarge(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # not an API error: a bug, let it be a 500 and be logged
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten(response.data)
        detail = _summary(errors)
    else:
        errors = {}
        detail = response.data.get("detail") if isinstance(response.data, dict) else None
        detail = str(detail if detail is not None else response.data)
    response.data = {"detail": detail, "errors": errors}
    return response
