"""24-hour delivery health figures for admin lists (partners, endpoints)."""

from datetime import timedelta

from django.db.models import Count, OuterRef, Q, Subquery
from django.utils.html import format_html

from deliveries.models import Delivery, DeliveryStatus

DAY = timedelta(hours=24)


def recent_count(status_q: Q, since):
    """Subquery: deliveries of the outer endpoint created since `since` matching `status_q`
    (an index-only range on delivery_endpoint_status)."""
    return Subquery(
        Delivery.objects.filter(status_q, endpoint=OuterRef("pk"), created_at__gte=since)
        .order_by()
        .values("endpoint")
        .annotate(n=Count("pk"))
        .values("n")[:1]
    )


FINISHED_OR_FAILING = Q(
    status__in=(DeliveryStatus.SUCCEEDED, DeliveryStatus.RETRYING, DeliveryStatus.DEAD)
)


def health_cell(ok, total):
    if not total:
        return "–"
    rate = 100.0 * (ok or 0) / total
    colour = "#2e7d32" if rate >= 99 else ("#b26a00" if rate >= 90 else "#ba2121")
    return format_html(
        '<span style="color:{}">{} %</span> <small>({}/{})</small>',
        colour,
        f"{rate:.1f}",
        ok or 0,
        total,
    )
