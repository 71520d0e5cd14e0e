"""JSON request bodies, refused with 413 past the size limit before they are parsed."""

import json

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from webhookhub.api.exceptions import PayloadTooLarge


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


class LimitedJSONParser(JSONParser):
    """`application/json` only. The raw body may be at most `view.max_body_bytes`
    (default `WEBHOOKHUB_MAX_PAYLOAD_BYTES`): a larger `Content-Length` is refused
    without reading, and at most limit + 1 bytes are ever read. NaN/Infinity and
    nesting deeper than Python's recursion limit are 400s, not 500s."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        view = parser_context.get("view")
        limit = getattr(view, "max_body_bytes", None) or settings.WEBHOOKHUB_MAX_PAYLOAD_BYTES
        request = parser_context.get("request")
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0) if request else 0
        except ValueError:
            declared = 0
        if declared > limit:
            raise PayloadTooLarge(limit)
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(limit)
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(raw.decode(encoding), parse_constant=_refuse_constant)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        except (ValueError, LookupError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
