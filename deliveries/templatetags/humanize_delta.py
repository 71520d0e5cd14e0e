"""Small template filters for the admin: durations and dict lookups."""

from datetime import timedelta

from django import template

register = template.Library()


@register.filter
def delta(value: timedelta | None) -> str:
    """A duration as support reads it: 42 s, 7 min, 3 h 5 min, 2 d 4 h."""
    if value is None:
        return "–"
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if mapping else None
