"""What text and JSON from outside must be to be stored and delivered as-is.

One checker for every door that takes JSON: the API's fields (webhookhub/api/fields.py)
and `publish()` for in-process callers (events/services.py). PostgreSQL refuses NUL
characters in text and JSON, UTF-8 cannot carry lone surrogates, JSON has no NaN or
Infinity, and absurd nesting exhausts the stack of whatever recurses over the value next
(`json.dumps`, the database adapter). Pure: a value in, a message naming where the
problem is out (or None). The walk is iterative and stops at the depth limit, so no
input, however deep, can exhaust the stack here.
"""

import math
import re

from django.utils.translation import gettext_lazy as _

MAX_JSON_DEPTH = 100
_SURROGATE = re.compile("[\ud800-\udfff]")
_SHOWN_KEY_LENGTH = 40

NUL = _("%(field)s contains a NUL character (U+0000), which cannot be stored.")
SURROGATE = _("%(field)s is not valid Unicode (it contains a lone surrogate).")
NUL_IN_KEY = _("A key in %(field)s contains a NUL character (U+0000), which cannot be stored.")
SURROGATE_IN_KEY = _("A key in %(field)s is not valid Unicode (it contains a lone surrogate).")
NOT_FINITE = _("%(field)s is not JSON-serialisable: NaN and Infinity are not JSON numbers.")
TOO_DEEP = _("%(field)s is nested more than %(limit)s levels deep.")


def text_problem(value: str, field: str) -> str | None:
    """Why the string `value` (of `field`) cannot be stored and sent, or None."""
    kind = _text_kind(value)
    return (NUL if kind == "nul" else SURROGATE) % {"field": field} if kind else None


def json_problem(value, field: str) -> str | None:
    """Why `value` (a parsed JSON value given as `field`) cannot be stored and sent as
    JSON, or None. The message names the place: `data.order.note`, `data.items.3`."""
    # Each entry: (item, depth, where); `where` is (parent's where, key), None for the
    # root, and becomes a dotted path only when there is a problem to name.
    stack = [(value, 1, None)]
    while stack:
        item, depth, where = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return TOO_DEEP % {"field": field, "limit": MAX_JSON_DEPTH}
        if isinstance(item, str):
            kind = _text_kind(item)
            if kind:
                return (NUL if kind == "nul" else SURROGATE) % {"field": _path(field, where)}
        elif isinstance(item, float):
            if not math.isfinite(item):
                return NOT_FINITE % {"field": _path(field, where)}
        elif isinstance(item, dict):
            for key in item:
                kind = _text_kind(key) if isinstance(key, str) else None
                if kind:
                    message = NUL_IN_KEY if kind == "nul" else SURROGATE_IN_KEY
                    return message % {"field": _path(field, where)}
            stack.extend((child, depth + 1, (where, key)) for key, child in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((child, depth + 1, (where, index)) for index, child in enumerate(item))
    return None


def _text_kind(value: str) -> str | None:
    if "\x00" in value:
        return "nul"
    if _SURROGATE.search(value):
        return "surrogate"
    return None


def _path(field: str, where) -> str:
    keys = []
    while where is not None:
        where, key = where
        key = str(key)
        if len(key) > _SHOWN_KEY_LENGTH:
            key = key[: _SHOWN_KEY_LENGTH - 1] + "…"
        keys.append(key)
    return ".".join([field, *reversed(keys)])
