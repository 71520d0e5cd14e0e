"""JSON request bodies, refused with 413 past the size limit before they are read."""

import json

from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from webhookhub.api.exceptions import PayloadTooLarge
from webhookhub.json_values import MAX_JSON_DEPTH


def _refuse_constant(name: str):
    raise ValueError(_("%(name)s is not valid JSON") % {"name": name})


def body_limit(view) -> int:
    """The largest request body `view` takes: its `max_body_bytes`, by default
    `WEBHOOKHUB_MAX_PAYLOAD_BYTES`."""
    return getattr(view, "max_body_bytes", None) or settings.WEBHOOKHUB_MAX_PAYLOAD_BYTES


def declared_length(request) -> int:
    """The request's `Content-Length` (0 when absent or not a number, as Django reads it)."""
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


class LimitedJSONParser(JSONParser):
    """`application/json` only. The raw body may be at most `body_limit(view)` bytes.

    API views refuse a larger `Content-Length` before the body is read (ApiViewMixin);
    here the declared length is checked again and at most limit + 1 bytes are parsed, for
    any view that does not. NaN/Infinity and nesting deeper than the parser can follow
    are 400s, not 500s."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        limit = body_limit(parser_context.get("view"))
        request = parser_context.get("request")
        if request is not None and declared_length(request) > limit:
            raise PayloadTooLarge(limit)
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(limit)
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(raw.decode(encoding), parse_constant=_refuse_constant)
        except RecursionError:
            # The C decoder stops at the interpreter's recursion limit and raises this
            # cleanly; the values it does return are depth-checked by the fields.
            raise ParseError(
                _("JSON parse error - nested more than %(limit)s levels deep.")
                % {"limit": MAX_JSON_DEPTH}
            ) from None
        except (ValueError, LookupError) as exc:
            raise ParseError(_("JSON parse error - %(reason)s") % {"reason": exc}) from None
