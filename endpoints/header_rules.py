"""What an endpoint's custom headers (and its bearer token) may be, and how their values
are shown. Pure: no Django, so validation (endpoints.validation), the API, the admin
and the transport (deliveries.transport) all apply these very rules.

* Names are RFC 9110 tokens; the ones webhookhub sets itself are protected, so a
  custom header is either refused when saved or sent — never dropped silently.
* Values follow RFC 9110 §5.5 field-value, minus obs-text: visible ASCII, with spaces
  and tabs only inside. Anything else (CR/LF, other controls, NEL, non-ASCII) either
  smuggles a header line or cannot be sent at all.
* Values are credentials: shown as `MASK` + their last 4 characters (all masked when
  shorter than 12), and a masked value sent back keeps the stored one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum

HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}")  # an RFC 9110 token
MAX_HEADERS = 20
MAX_VALUE_LENGTH = 1000
MAX_TOKEN_LENGTH = 500  # the bearer token (auth_token)
PROTECTED_PREFIX = "webhook-"  # webhook-id, webhook-timestamp, webhook-signature, ...
# Set by webhookhub (framing, identity, signature, auth) or hop-by-hop (RFC 9110 §7.6.1:
# they describe one connection, would corrupt the request or smuggle a second one).
PROTECTED_HEADERS = frozenset(
    {
        "authorization",
        "content-type",
        "content-length",
        "host",
        "user-agent",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "proxy-authorization",
        "proxy-connection",
        # W3C Trace Context: the attempt's own, when the endpoint asks for it
        # (`send_traceparent`); a fixed value would join every webhook to one trace.
        "traceparent",
        "tracestate",
    }
)

MASK = "••••"
MASK_KEEPS_LAST = 4
MASK_MIN_LENGTH = 12  # shorter values are masked completely

# field-value = empty, or field-vchar [ *( SP / HTAB / field-vchar ) field-vchar ]
_FIELD_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\x21-\x7e \t]*[\x21-\x7e])?)?")


class ValueProblem(StrEnum):
    NOT_TEXT = "not_text"
    TOO_LONG = "too_long"
    CONTROL = "control"  # C0, DEL, C1 (NEL U+0085 among them)
    NOT_ASCII = "not_ascii"
    EDGE_WHITESPACE = "edge_whitespace"


def is_valid_name(name: object) -> bool:
    return isinstance(name, str) and HEADER_NAME.fullmatch(name) is not None


def is_protected(name: str) -> bool:
    """A header webhookhub sets or never forwards, whatever its case."""
    lower = name.strip().lower()
    return lower.startswith(PROTECTED_PREFIX) or lower in PROTECTED_HEADERS


def value_problem(
    value: object, *, max_length: int = MAX_VALUE_LENGTH
) -> tuple[ValueProblem, str] | None:
    """Why `value` cannot go out as a header value, with the offending character
    (``U+XXXX``, empty when not about one character); None if it can."""
    if not isinstance(value, str):
        return ValueProblem.NOT_TEXT, ""
    if len(value) > max_length:
        return ValueProblem.TOO_LONG, ""
    if _FIELD_VALUE.fullmatch(value):
        return None
    for char in value:
        code = ord(char)
        if (code < 0x20 and char != "\t") or 0x7F <= code <= 0x9F:
            return ValueProblem.CONTROL, f"U+{code:04X}"
        if code > 0x7E:
            return ValueProblem.NOT_ASCII, f"U+{code:04X}"
    return ValueProblem.EDGE_WHITESPACE, ""


def mask_value(value: str) -> str:
    """`••••` + the last 4 characters; just `••••` for values shorter than 12."""
    return MASK if len(value) < MASK_MIN_LENGTH else MASK + value[-MASK_KEEPS_LAST:]


def is_masked(value: object) -> bool:
    """Whether `value` has the shape `mask_value` gives (never a valid header value)."""
    return isinstance(value, str) and (
        value == MASK or (value.startswith(MASK) and len(value) == len(MASK) + MASK_KEEPS_LAST)
    )


def masked(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Custom headers fit to show: every value masked."""
    return {name: mask_value(value) for name, value in (headers or {}).items()}


def keep_masked(new: Mapping[str, object], current: Mapping[str, str] | None) -> dict:
    """`new` with each value that is the masked form of the current value of the same
    header (names compared case-insensitively) replaced by that current value.

    So a client may send back what it was shown and change only what it replaces; a
    masked value matching nothing stays masked and fails validation.
    """
    stored = {name.lower(): value for name, value in (current or {}).items()}
    kept = {}
    for name, value in new.items():
        old = stored.get(name.lower()) if isinstance(name, str) else None
        if old is not None and is_masked(value) and value == mask_value(old):
            value = old
        kept[name] = value
    return kept
