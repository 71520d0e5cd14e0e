"""Read queries behind the admin dashboard: delivery health over a window.

Every figure is an indexed range query (events by created_at, attempts by started_at,
waiting deliveries through the `delivery_due` partial index). A scheduled task computes
the figures every minute into the "shared" cache (Redis or a database table), so no page
view pays for counting millions of rows; the page shows when they were computed, and
its refresh link recomputes them on demand.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.cache import caches
from django.db.models import Count, Min, OuterRef, Q, Subquery
from django.db.models.functions import TruncHour
from django.utils import timezone

from deliveries.models import (
    CircuitState,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    due_q,
)
from endpoints.models import Endpoint
from events.models import Event

CACHE_SECONDS = 300  # the schedule refreshes every minute; this only bounds staleness
CACHE_KEY = "webhookhub:dashboard"
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}


@dataclass
class WindowStats:
    label: str
    since: datetime
    events: int
    attempts_ok: int
    attempts_failed: int
    dead: int
    p50_ms: int | None
    p95_ms: int | None

    @property
    def success_rate(self) -> float | None:
        total = self.attempts_ok + self.attempts_failed
        return None if total == 0 else 100.0 * self.attempts_ok / total


@dataclass
class Dashboard:
    computed_at: datetime
    windows: list[WindowStats]
    backlog: int
    backlog_oldest: datetime | None
    in_flight: int
    dead_total: int
    open_circuits: int
    disabled_endpoints: int
    hourly: list[dict] = field(default_factory=list)
    failing: list[Endpoint] = field(default_factory=list)

    @property
    def backlog_age(self) -> timedelta | None:
        return None if self.backlog_oldest is None else self.computed_at - self.backlog_oldest


def dashboard(*, refresh: bool = False) -> Dashboard:
    """The latest dashboard figures; computed now if none are cached or on `refresh`."""
    cache = caches["shared"]
    if not refresh:
        cached = cache.get(CACHE_KEY)
        if cached is not None:
            return cached
    result = compute_dashboard(timezone.now())
    cache.set(CACHE_KEY, result, CACHE_SECONDS)
    return result


def compute_dashboard(now: datetime) -> Dashboard:
    due = Delivery.objects.filter(due_q(now))
    backlog = due.aggregate(n=Count("pk"), oldest=Min("next_attempt_at"))
    return Dashboard(
        computed_at=now,
        windows=[window_stats(label, now - span) for label, span in WINDOWS.items()],
        backlog=backlog["n"],
        backlog_oldest=backlog["oldest"],
        in_flight=Delivery.objects.filter(status=DeliveryStatus.IN_FLIGHT).count(),
        dead_total=Delivery.objects.filter(status=DeliveryStatus.DEAD).count(),
        open_circuits=Endpoint.objects.exclude(health__circuit_state=CircuitState.CLOSED).count(),
        disabled_endpoints=Endpoint.objects.filter(enabled=False).count(),
        hourly=hourly_outcomes(now),
        failing=failing_endpoints(),
    )


def window_stats(label: str, since: datetime) -> WindowStats:
    # One grouped pass over the window (an index-only scan of `attempt_started`, which
    # carries duration_ms and succeeded) gives both the counts and the percentiles.
    histogram = list(
        DeliveryAttempt.objects.filter(started_at__gte=since)
        .order_by()
        .values("duration_ms", "succeeded")
        .annotate(n=Count("started_at"))
        .values_list("duration_ms", "succeeded", "n")
    )
    ok = sum(n for _, succeeded, n in histogram if succeeded)
    failed = sum(n for _, succeeded, n in histogram if not succeeded)
    return WindowStats(
        label=label,
        since=since,
        events=Event.objects.filter(created_at__gte=since).count(),
        attempts_ok=ok,
        attempts_failed=failed,
        dead=Delivery.objects.filter(status=DeliveryStatus.DEAD, created_at__gte=since).count(),
        p50_ms=percentile(histogram, 0.50),
        p95_ms=percentile(histogram, 0.95),
    )


def percentile(histogram: list[tuple[int, bool, int]], q: float) -> int | None:
    """The duration at rank int(q * total) (0-based) of (duration, _, count) rows."""
    counts: dict[int, int] = {}
    for duration, _, n in histogram:
        counts[duration] = counts.get(duration, 0) + n
    total = sum(counts.values())
    if not total:
        return None
    rank = min(total - 1, int(q * total))
    seen = 0
    for duration in sorted(counts):
        seen += counts[duration]
        if seen > rank:
            return duration
    return None


def hourly_outcomes(now: datetime) -> list[dict]:
    """Attempts per hour over the last 24 h: [{"hour", "ok", "failed"}] oldest first."""
    start = (now - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
    rows = (
        DeliveryAttempt.objects.filter(started_at__gte=start)
        .order_by()  # the model's default ordering would join deliveries
        .annotate(hour=TruncHour("started_at"))
        .values("hour")
        .annotate(
            ok=Count("started_at", filter=Q(succeeded=True)),
            failed=Count("started_at", filter=Q(succeeded=False)),
        )
    )
    by_hour = {row["hour"]: row for row in rows}
    hours = []
    for i in range(24):
        hour = start + timedelta(hours=i)
        row = by_hour.get(hour, {})
        hours.append({"hour": hour, "ok": row.get("ok", 0), "failed": row.get("failed", 0)})
    return hours


def failing_endpoints(limit: int = 10) -> list[Endpoint]:
    """Endpoints failing right now, worst first, each with its latest error."""
    # Newest delivery with an error: a walk down the (endpoint, -created_at) index.
    latest_failure = (
        Delivery.objects.filter(endpoint=OuterRef("pk"))
        .exclude(last_error="")
        .order_by("-created_at")
    )
    return list(
        Endpoint.objects.filter(health__failing_since__isnull=False)
        .select_related("partner", "health")
        .annotate(last_error=Subquery(latest_failure.values("last_error")[:1]))
        .order_by("-health__consecutive_failures", "pk")[:limit]
    )
