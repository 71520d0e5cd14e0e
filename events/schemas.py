"""Pure: an event type's JSON Schema (Draft 2020-12, the `jsonschema` library) and what
a payload breaks of it. Values in, values out: no database.

Only references inside the schema (`"$ref": "#/$defs/…"`) are allowed: `jsonschema`
retrieves nothing over the network, and a schema that points elsewhere is refused when it
is saved. `format` is an annotation (Draft 2020-12's default), not checked.

A problem is `{"path": "data.amount", "message": "'x' is not of type 'integer'"}`: the
JSON path from the payload's root and the rule it broke, as `jsonschema` words it.
"""

from collections.abc import Iterator

from django.utils.translation import gettext as _
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable

# How many problems an event records and a refusal names: enough to fix the payload,
# few enough to read (and to store for every flagged event).
MAX_PROBLEMS = 5
_SHOWN_MESSAGE_LENGTH = 300


def schema_problem(schema) -> str | None:
    """Why `schema` is not a usable Draft 2020-12 JSON Schema, or None."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = _path("schema", exc.absolute_path)
        return _("Not a valid JSON Schema (Draft 2020-12): %(where)s: %(reason)s") % {
            "where": where,
            "reason": _shorten(exc.message),
        }
    for ref in _refs(schema):
        if not ref.startswith("#"):
            return _(
                "Only references inside the schema are resolved (%(ref)r): use $defs and "
                '"$ref": "#/$defs/…".'
            ) % {"ref": ref}
    return None


def compiled(schema) -> Draft202012Validator:
    """A validator for a schema `schema_problem` accepted (compiling is the costly part:
    callers keep it)."""
    return Draft202012Validator(schema)


def payload_problems(validator: Draft202012Validator, value, *, root: str = "data") -> list[dict]:
    """The first few places where `value` does not validate, sorted by path; [] if it
    does. A reference that cannot be resolved is a problem of the whole payload."""
    try:
        if validator.is_valid(value):
            return []
        errors = sorted(
            validator.iter_errors(value),
            key=lambda e: ([str(p) for p in e.absolute_path], e.message),
        )
    except Unresolvable as exc:
        reason = _("the schema's reference cannot be resolved: %(ref)s") % {"ref": exc}
        return [{"path": root, "message": _shorten(reason)}]
    return [
        {"path": _path(root, error.absolute_path), "message": _shorten(error.message)}
        for error in errors[:MAX_PROBLEMS]
    ]


def describe(problem: dict) -> str:
    """One problem as a line: `data.amount: 'x' is not of type 'integer'`."""
    return f"{problem['path']}: {problem['message']}"


def _path(root: str, parts) -> str:
    return ".".join([root, *(str(part) for part in parts)])


def _shorten(message: str) -> str:
    if len(message) <= _SHOWN_MESSAGE_LENGTH:
        return message
    return message[: _SHOWN_MESSAGE_LENGTH - 1] + "…"


def _refs(schema) -> Iterator[str]:
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if key in ("$ref", "$dynamicRef") and isinstance(child, str):
                    yield child
                else:
                    stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
