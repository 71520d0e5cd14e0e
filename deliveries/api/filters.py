"""Query filters for `/api/v1/deliveries/`."""

import django_filters

from deliveries.models import Delivery, DeliveryStatus


class DeliveryFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices)
    endpoint = django_filters.CharFilter(
        field_name="endpoint__public_id", max_length=40, label="Endpoint id (`ep_…`)."
    )
    event = django_filters.CharFilter(
        field_name="event__public_id", max_length=40, label="Event id (`evt_…`)."
    )
    event_type = django_filters.CharFilter(
        field_name="event__event_type__name", max_length=200, label="Event type name."
    )

    class Meta:
        model = Delivery
        fields = ["status", "endpoint", "event", "event_type"]
