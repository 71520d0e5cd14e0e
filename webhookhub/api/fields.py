"""Strict JSON fields: a JSON API takes the types its schema names, nothing coerced.

DRF would turn `123` into the string "123" and `"true"` into True; these fields refuse
wrong types with a message instead. Text and JSON values are checked for what PostgreSQL
and the delivery envelope cannot carry (NUL characters, lone surrogates, NaN, absurd
nesting) by the same checker `publish()` uses (webhookhub/json_values.py), so such input
is a 400 naming the field instead of a database error.
"""

from datetime import UTC

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from webhookhub.json_values import json_problem, text_problem


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know (a typo must not be silently ignored)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: [_("Unknown field.")] for name in unknown})
        return super().to_internal_value(data)


def _label(field) -> str:
    """The name messages give a field: its own, or its list's or dict's (`tags`)."""
    return field.field_name or getattr(field.parent, "field_name", "") or str(_("value"))


class TextField(serializers.CharField):
    """A JSON string, and only a string, taken as sent: not trimmed (DRF's default would
    turn a schema-valid "\x1c" into a blank and refuse it)."""

    default_error_messages = {"type": _("Expected a string.")}

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("type")
        problem = text_problem(data, _label(self))
        if problem:
            raise serializers.ValidationError(problem)
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer (not a string, a float or a boolean)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """`true` or `false`."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class SafeDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time; one without a zone is taken as UTC. Years 1 to 9998.

    Returned in UTC: Python accepts offsets up to ±23:59, PostgreSQL only ±15:59.
    """

    default_error_messages = {"range": _("The time is out of range.")}

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid", format="ISO 8601")
        try:
            parsed = super().to_internal_value(value).astimezone(UTC)
        except (OverflowError, ValueError):
            self.fail("range")
        if not 1 <= parsed.year <= 9998:
            self.fail("range")
        return parsed


class JSONValueField(serializers.JSONField):
    """Any JSON value that can be stored and delivered as-is."""

    def to_internal_value(self, data):
        problem = json_problem(data, _label(self))
        if problem:
            raise serializers.ValidationError(problem)
        return super().to_internal_value(data)


class JSONObjectField(JSONValueField):
    """A JSON object."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(_("Expected a JSON object."))
        return super().to_internal_value(data)


def run_rule(rule, *args, field: str | None = None):
    """Run a foundation validation rule (raising Django's ValidationError({field: msg}))
    and re-raise its messages as this serializer field's error."""
    try:
        rule(*args)
    except DjangoValidationError as exc:
        if hasattr(exc, "error_dict"):
            messages = [m for errors in exc.error_dict.values() for e in errors for m in e.messages]
        else:
            messages = exc.messages
        raise serializers.ValidationError(messages) from None
