"""Payload filters for subscriptions.

A filter is JSON. ``null`` or ``{}`` matches every event. Otherwise it is a
*condition* or a *combinator* (whose members are filters other than ``null``)::

    {"path": "data.order.amount", "op": "gt", "value": 100}
    {"and": [filter, ...]}      {"or": [filter, ...]}

``path`` is a dotted path into the event envelope
``{"id", "type", "timestamp", "data"}``; segments made of digits also index
into lists (``data.items.0.sku``). Operators:

* ``eq`` / ``ne`` -- JSON equality (``true`` never equals ``1``).
* ``gt`` ``gte`` ``lt`` ``lte`` -- numbers against numbers, strings against
  strings; any other pairing is false.
* ``in`` / ``nin`` -- the field equals (does not equal) an item of a list.
* ``contains`` -- a string contains a substring, a list contains an element,
  or an object has a key.
* ``regex`` -- a string field matches an RE2 pattern (searched anywhere;
  linear time, so no backreferences or look-around). Only the first 64 KB
  (65,536 bytes of UTF-8) of the field are searched.
* ``exists`` -- ``true`` if the path is present (even when its value is
  ``null``), ``false`` if it is absent.

When the path is absent, every condition is false except ``ne``, ``nin`` and
``exists: false``, which are true. Matching never raises, whatever the payload
looks like. Limits, checked when a filter is saved: combinators nest at most 6
deep, at most 64 conditions in total, a path has at most 256 characters and 16
non-empty segments, a regex at most 512 characters, an ``in``/``nin`` list at
most 256 items, and the whole filter at most 16 KB as JSON.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

import re2

MAX_DEPTH = 6
MAX_CONDITIONS = 64
MAX_PATH_LENGTH = 256
MAX_PATH_SEGMENTS = 16
MAX_REGEX_LENGTH = 512
MAX_LIST_ITEMS = 256
MAX_FILTER_BYTES = 16 * 1024
MAX_REGEX_INPUT_BYTES = 64 * 1024

OPERATORS = frozenset(
    ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "regex", "exists")
)
_ORDERINGS = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
CONDITION_KEYS = ("path", "op", "value")
COMBINATORS = ("and", "or")

Predicate = Callable[[Any], bool]
_MISSING = object()
_REGEX_OPTIONS = re2.Options()
_REGEX_OPTIONS.log_errors = False


class FilterError(ValueError):
    """An invalid filter. ``field`` locates the problem, e.g. ``filter.and[1].op``."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def validate_filter(spec: Any, *, field: str = "filter") -> None:
    """Raise :class:`FilterError` if ``spec`` is not a valid filter.

    The error's ``field`` is the location of the first problem found, rooted
    at ``field``, and its message includes that location.
    """
    compile_filter(spec, field=field, strict=True)


def compile_filter(
    spec: Any, *, field: str = "filter", strict: bool = False
) -> Callable[[dict], bool]:
    """Validate ``spec`` and return a predicate over event envelopes.

    Raises :class:`FilterError` like :func:`validate_filter`. Regexes are
    compiled once here; the predicate returns a bool for any input and never
    raises. Not ``strict`` (matching at fan-out), a ``null`` member of a
    combinator matches every event, as it did when such filters were
    accepted, so a stored filter keeps working; ``strict`` (saving) refuses it.
    """
    counter = [0]
    predicate = _build(spec, field, 0, counter, field, strict)
    try:
        encoded = json.dumps(spec, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise FilterError(field, "must contain only JSON values") from None
    size = len(encoded.encode("utf-8", "surrogatepass"))
    if size > MAX_FILTER_BYTES:
        raise FilterError(
            field, f"is too large ({size} bytes as JSON; the limit is {MAX_FILTER_BYTES})"
        )
    return predicate


def matches(spec: Any, envelope: dict) -> bool:
    """Return whether ``envelope`` passes ``spec``.

    Same as ``compile_filter(spec)(envelope)``, but compiled filters are cached
    (up to 1024, keyed by canonical JSON). Raises :class:`FilterError` if the
    filter is invalid; never raises because of the envelope.
    """
    try:
        key = json.dumps(spec, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise FilterError("filter", "must contain only JSON values") from None
    return _compile_cached(key)(envelope)


@lru_cache(maxsize=1024)
def _compile_cached(key: str) -> Callable[[dict], bool]:
    return compile_filter(json.loads(key))


class Miss(NamedTuple):
    """A condition an envelope failed: its path, operator, value and what was found
    there (``found`` is ``ABSENT`` when the path is absent)."""

    path: str
    op: str
    value: Any
    found: Any


ABSENT = _MISSING


def first_misses(spec: Any, envelope: dict) -> list[Miss] | None:
    """None if ``envelope`` passes ``spec``; otherwise the conditions that failed it:
    the first failing condition of an ``and``, every alternative of a failed ``or``.
    An invalid filter gives ``[]``. Never raises because of the envelope."""

    def walk(node: Any) -> list[Miss] | None:
        if node is None or (isinstance(node, dict) and not node):
            return None
        if isinstance(node, dict) and isinstance(node.get("and"), list):
            for child in node["and"]:
                misses = walk(child)
                if misses is not None:
                    return misses
            return None
        if isinstance(node, dict) and isinstance(node.get("or"), list):
            found: list[Miss] = []
            for child in node["or"]:
                misses = walk(child)
                if misses is None:
                    return None
                found.extend(misses)
            return found
        try:
            if _build_condition(node, "filter")(envelope):
                return None
            actual = _resolve(envelope, _parse_path(node["path"], "filter.path"))
        except (FilterError, TypeError, KeyError):
            return []
        return [Miss(node["path"], node["op"], node["value"], actual)]

    return walk(spec)


def _always(envelope: Any) -> bool:
    return True


def _build(
    spec: Any, loc: str, depth: int, counter: list[int], root: str, strict: bool
) -> Predicate:
    if (spec is None and not (strict and depth)) or (isinstance(spec, dict) and not spec):
        return _always
    if not isinstance(spec, dict):
        raise FilterError(loc, "must be an object (a condition or an 'and'/'or' combinator)")
    combinators = [key for key in COMBINATORS if key in spec]
    if combinators:
        if len(spec) != 1:
            raise FilterError(loc, "a combinator must have exactly one key, 'and' or 'or'")
        name = combinators[0]
        here = f"{loc}.{name}"
        if depth >= MAX_DEPTH:
            raise FilterError(here, f"nests too deeply (at most {MAX_DEPTH} levels)")
        children = spec[name]
        if not isinstance(children, list) or not children:
            raise FilterError(here, "must be a non-empty list of filters")
        parts = tuple(
            _build(child, f"{here}[{i}]", depth + 1, counter, root, strict)
            for i, child in enumerate(children)
        )
        if name == "and":
            return lambda envelope: all(part(envelope) for part in parts)
        return lambda envelope: any(part(envelope) for part in parts)
    for key in spec:
        if key not in CONDITION_KEYS:
            raise FilterError(
                f"{loc}.{key}", "unknown key; a condition has only 'path', 'op' and 'value'"
            )
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise FilterError(root, f"has too many conditions (at most {MAX_CONDITIONS})")
    return _build_condition(spec, loc)


def _parse_path(path: Any, loc: str) -> tuple[tuple[str, int | None], ...]:
    if not isinstance(path, str) or not path:
        raise FilterError(loc, "must be a non-empty string such as 'data.order.amount'")
    if len(path) > MAX_PATH_LENGTH:
        raise FilterError(loc, f"is too long (at most {MAX_PATH_LENGTH} characters)")
    segments = path.split(".")
    if len(segments) > MAX_PATH_SEGMENTS:
        raise FilterError(loc, f"has too many segments (at most {MAX_PATH_SEGMENTS})")
    if not all(segments):
        raise FilterError(loc, "must not contain empty segments")
    return tuple((seg, int(seg) if seg.isascii() and seg.isdigit() else None) for seg in segments)


def _build_condition(spec: dict, loc: str) -> Predicate:
    if "path" not in spec:
        raise FilterError(f"{loc}.path", "is required")
    segments = _parse_path(spec["path"], f"{loc}.path")
    if "op" not in spec:
        raise FilterError(f"{loc}.op", "is required")
    op = spec["op"]
    if not isinstance(op, str) or op not in OPERATORS:
        raise FilterError(f"{loc}.op", f"must be one of: {', '.join(sorted(OPERATORS))}")
    value_loc = f"{loc}.value"
    if "value" not in spec:
        raise FilterError(value_loc, f"is required for '{op}'")
    value = spec["value"]
    test = _build_test(op, value, value_loc)
    absent = op in ("ne", "nin") or (op == "exists" and value is False)

    def condition(envelope: Any) -> bool:
        actual = _resolve(envelope, segments)
        return absent if actual is _MISSING else test(actual)

    return condition


def _build_test(op: str, value: Any, loc: str) -> Predicate:
    if op == "eq":
        return lambda actual: _same(actual, value)
    if op == "ne":
        return lambda actual: not _same(actual, value)
    if op in _ORDERINGS:
        if not (_is_number(value) or isinstance(value, str)):
            raise FilterError(loc, f"must be a number or a string for '{op}'")
        return _ordering(op, value)
    if op in ("in", "nin"):
        if not isinstance(value, list):
            raise FilterError(loc, f"must be a list for '{op}'")
        if len(value) > MAX_LIST_ITEMS:
            raise FilterError(loc, f"has too many items (at most {MAX_LIST_ITEMS})")
        items = tuple(value)
        if op == "in":
            return lambda actual: any(_same(actual, item) for item in items)
        return lambda actual: not any(_same(actual, item) for item in items)
    if op == "contains":
        return lambda actual: _contains(actual, value)
    if op == "regex":
        return _regex(value, loc)
    if not isinstance(value, bool):
        raise FilterError(loc, "must be true or false for 'exists'")
    return lambda actual: value


def _ordering(op: str, value: Any) -> Predicate:
    compare = _ORDERINGS[op]
    same_kind = _is_number if _is_number(value) else lambda actual: isinstance(actual, str)
    return lambda actual: same_kind(actual) and compare(actual, value)


def _regex(pattern: Any, loc: str) -> Predicate:
    if not isinstance(pattern, str):
        raise FilterError(loc, "must be a string (a regular expression) for 'regex'")
    if len(pattern) > MAX_REGEX_LENGTH:
        raise FilterError(loc, f"is too long (at most {MAX_REGEX_LENGTH} characters)")
    try:
        compiled = re2.compile(pattern, _REGEX_OPTIONS)
    except (re2.error, UnicodeError) as exc:
        reason = exc.args[0] if exc.args else ""
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise FilterError(
            loc,
            f"pattern is not supported ({reason}); RE2 syntax is required, "
            "without backreferences or look-around",
        ) from None

    def test(actual: Any) -> bool:
        if not isinstance(actual, str):
            return False
        head = actual[:MAX_REGEX_INPUT_BYTES].encode("utf-8", "surrogatepass")
        return compiled.search(head[:MAX_REGEX_INPUT_BYTES]) is not None

    return test


def _resolve(current: Any, segments: tuple[tuple[str, int | None], ...]) -> Any:
    for key, index in segments:
        if isinstance(current, dict):
            current = current.get(key, _MISSING)
        elif isinstance(current, list) and index is not None and index < len(current):
            current = current[index]
        else:
            return _MISSING
        if current is _MISSING:
            return _MISSING
    return current


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    pending = [(a, b)]
    while pending:
        a, b = pending.pop()
        if isinstance(a, bool) or isinstance(b, bool):
            equal = isinstance(a, bool) and isinstance(b, bool) and a == b
        elif _is_number(a) or _is_number(b):
            equal = _is_number(a) and _is_number(b) and a == b
        elif isinstance(a, str) or isinstance(b, str):
            equal = isinstance(a, str) and isinstance(b, str) and a == b
        elif isinstance(a, list) and isinstance(b, list):
            equal = len(a) == len(b)
            pending.extend(zip(a, b, strict=False))
        elif isinstance(a, dict) and isinstance(b, dict):
            equal = a.keys() == b.keys()
            if equal:
                pending.extend((value, b[key]) for key, value in a.items())
        else:
            equal = a is None and b is None
        if not equal:
            return False
    return True


def _contains(actual: Any, value: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(value, str) and value in actual
    if isinstance(actual, list):
        return any(_same(item, value) for item in actual)
    if isinstance(actual, dict):
        return isinstance(value, str) and value in actual
    return False
