"""The portal's reads, always narrowed to the signed-in partner with the API's own rule
(webhookhub.api.scoping.partner_scope): another partner's object is simply not there."""

from django.db.models import OuterRef, Q, Subquery
from django.shortcuts import get_object_or_404
from django.utils import timezone

from console.health_columns import DAY, FINISHED_OR_FAILING, recent_count
from deliveries.models import Delivery, DeliveryStatus
from endpoints.models import Endpoint, Partner
from events.models import Event
from events.selectors import events_matching_pattern
from webhookhub.api.scoping import partner_scope


def partner_endpoints(partner: Partner):
    return Endpoint.objects.filter(partner_scope(Endpoint, partner))


def partner_endpoint(partner: Partner, public_id: str) -> Endpoint:
    return get_object_or_404(
        partner_endpoints(partner).select_related("partner"), public_id=public_id
    )


def partner_deliveries(partner: Partner):
    return Delivery.objects.filter(partner_scope(Delivery, partner))


def partner_delivery(partner: Partner, public_id: str) -> Delivery:
    return get_object_or_404(
        partner_deliveries(partner).select_related("event__event_type", "endpoint"),
        public_id=public_id,
    )


def partner_events(partner: Partner):
    return Event.objects.filter(partner_scope(Event, partner))


def endpoints_overview(partner: Partner):
    """The webhooks list: each endpoint with its health row, subscriptions, 24 h
    figures and its last attempt (time and code), in a fixed number of queries."""
    since = timezone.now() - DAY
    last = Delivery.objects.filter(endpoint=OuterRef("pk"), last_attempt_at__isnull=False).order_by(
        "-last_attempt_at"
    )
    return (
        partner_endpoints(partner)
        .select_related("health")
        .prefetch_related("subscriptions")
        .annotate(
            ok_24h=recent_count(Q(status=DeliveryStatus.SUCCEEDED), since),
            total_24h=recent_count(FINISHED_OR_FAILING, since),
            last_attempt_at=Subquery(last.values("last_attempt_at")[:1]),
            last_status_code=Subquery(last.values("last_status_code")[:1]),
            last_status=Subquery(last.values("status")[:1]),
        )
        .order_by("created_at", "pk")
    )


def events_for_pattern(partner: Partner, pattern: str, *, limit: int = 100) -> list:
    """The partner's newest events a subscription value (`order.paid`, `order.*`, `*`)
    selects: what a filter preview runs against."""
    return events_matching_pattern(pattern, limit=limit, among=partner_events(partner))
