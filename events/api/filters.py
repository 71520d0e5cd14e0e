"""Query filters for `/api/v1/events/` and `/api/v1/event-types/`."""

from datetime import UTC

import django_filters
from django import forms
from django.utils.translation import gettext_lazy as _
from django_filters.fields import IsoDateTimeField

from events.models import Event, EventType


class SafeDateTimeFormField(IsoDateTimeField):
    """ISO 8601, returned in UTC (PostgreSQL refuses offsets past ±15:59 that Python
    accepts); a time that cannot be expressed in UTC is invalid, not a 500."""

    def to_python(self, value):
        result = super().to_python(value)
        if result is not None:
            try:
                result = result.astimezone(UTC)
            except (OverflowError, ValueError):
                raise forms.ValidationError(_("The time is out of range.")) from None
            if not 1 <= result.year <= 9998:
                raise forms.ValidationError(_("The time is out of range."))
        return result


class SafeDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = SafeDateTimeFormField


class EventFilter(django_filters.FilterSet):
    type = django_filters.CharFilter(
        field_name="event_type__name", max_length=200, label="Event type name."
    )
    partner = django_filters.CharFilter(
        field_name="partner__public_id", max_length=40, label="Partner id (`prt_…`)."
    )
    created_after = SafeDateTimeFilter(
        field_name="created_at",
        lookup_expr="gte",
        label="Created at or after this time (years 1 to 9998 once in UTC).",
    )
    created_before = SafeDateTimeFilter(
        field_name="created_at",
        lookup_expr="lt",
        label="Created before this time (years 1 to 9998 once in UTC).",
    )

    class Meta:
        model = Event
        fields = ["type", "partner", "created_after", "created_before"]


class EventTypeFilter(django_filters.FilterSet):
    archived = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        method="filter_archived",
        label="`true`: archived types only. Default: active ones.",
    )

    class Meta:
        model = EventType
        fields = ["archived"]

    def filter_queryset(self, queryset):
        if not self.form.cleaned_data.get("archived"):
            queryset = queryset.filter(archived_at__isnull=True)
        return super().filter_queryset(queryset)

    def filter_archived(self, queryset, name, value):
        return queryset.filter(archived_at__isnull=value != "true")
