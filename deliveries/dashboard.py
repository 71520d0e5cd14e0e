"""Read queries behind the admin dashboard: delivery health now and over a window.

Two sets of figures, each kept in the "shared" cache (Redis or a database table) so
that no page view pays for counting millions of rows:

- `dashboard()`: the 24 h and 7 d windows, attempts per hour, dead letters and the
  failing endpoints. A scheduled task recomputes them every minute; the page says when
  they were computed and its refresh link recomputes them on demand.
- `live()`: the last hour in 10 s slots and what is waiting right now, by reason. The
  page polls it every few seconds; it is computed at most once per LIVE_CACHE_SECONDS
  however many tabs are open.

Every figure is an indexed range query: events by created_at, attempts by started_at
(an index-only scan of `attempt_started`, which carries duration_ms and succeeded),
waiting deliveries through the `delivery_endpoint_due` partial index. Counts that may
reach millions of rows stop at a cap (`count_bounded`, WAITING_CAP).
"""

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.core.cache import caches
from django.db import connection
from django.db.models import (
    Aggregate,
    Case,
    Count,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import TruncHour
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from deliveries.models import (
    CircuitState,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    EndpointHealth,
)
from deliveries.selectors import BoundedCount, count_bounded, due_backlog, endpoint_counts
from endpoints.models import Endpoint
from events.models import Event

CACHE_SECONDS = 300  # the schedule refreshes every minute; this only bounds staleness
CACHE_KEY = "webhookhub:dashboard:v2"  # v2: the figures' shape changed (live, waiting)
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
FAILING_LIMIT = 50

LIVE_CACHE_KEY = "webhookhub:dashboard:live"
LIVE_CACHE_SECONDS = 2
STEP = 10  # seconds per slot of the live series
LIVE_SLOTS = 360  # one hour
WAITING_CAP = 100_000  # waiting rows grouped at most; beyond, the counts are "at least"
OVERDUE = timedelta(seconds=1)  # due this long at a rate-limited endpoint: rate limited

# Why a waiting (pending/retrying) delivery has not gone yet (`waiting_reason`).
WAITING_REASONS = {
    "circuit_open": _("Circuit open or half-open"),
    "endpoint_off": _("Endpoint or partner switched off"),
    "ordered": _("Held behind an earlier delivery (ordered endpoint)"),
    "rate_limited": _("Rate limited"),
    "due": _("Due, not sent yet"),
    "later": _("Retry scheduled for later"),
}
SELF_DISABLED = (Endpoint.DisabledBy.AUTO, Endpoint.DisabledBy.GONE)


# --- the minute figures ----------------------------------------------------------------


@dataclass
class WindowStats:
    label: str
    since: datetime
    events: int
    attempts_ok: int
    attempts_failed: int
    dead: int  # died in the window (completed_at), whenever they were created
    p50_ms: int | None
    p95_ms: int | None

    @property
    def success_rate(self) -> float | None:
        return rate(self.attempts_ok, self.attempts_failed)


@dataclass
class Dashboard:
    computed_at: datetime
    windows: list[WindowStats]
    dead_total: BoundedCount
    disabled: dict[str, int]  # switched-off endpoints by kind (manual, auto, gone)
    hourly: list[dict] = field(default_factory=list)
    failing: list[Endpoint] = field(default_factory=list)
    failing_total: int = 0


def rate(ok: int, failed: int) -> float | None:
    total = ok + failed
    return None if total == 0 else 100.0 * ok / total


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
    failing, failing_total = failing_endpoints(now)
    # Dead letters in all and those that died in each window, in one pass over the dead
    # rows (the `delivery_status_recent` index; nothing indexes completed_at).
    dead = Delivery.objects.filter(status=DeliveryStatus.DEAD).aggregate(
        total=Count("pk"),
        **{
            label: Count("pk", filter=Q(completed_at__gte=now - span))
            for label, span in WINDOWS.items()
        },
    )
    return Dashboard(
        computed_at=now,
        windows=[
            window_stats(label, now - span, dead=dead[label]) for label, span in WINDOWS.items()
        ],
        dead_total=BoundedCount(dead["total"], True),
        disabled=endpoint_counts().disabled,
        hourly=hourly_outcomes(now),
        failing=failing,
        failing_total=failing_total,
    )


def window_stats(label: str, since: datetime, *, dead: int) -> WindowStats:
    # One grouped pass over the window (an index-only scan of `attempt_started`, which
    # carries duration_ms and succeeded) gives both the counts and the percentiles.
    histogram = list(
        DeliveryAttempt.objects.filter(started_at__gte=since)
        .order_by()
        .values("duration_ms", "succeeded")
        .annotate(n=Count("started_at"))
        .values_list("duration_ms", "succeeded", "n")
    )
    return WindowStats(
        label=label,
        since=since,
        events=Event.objects.filter(created_at__gte=since).count(),
        attempts_ok=sum(n for _, succeeded, n in histogram if succeeded),
        attempts_failed=sum(n for _, succeeded, n in histogram if not succeeded),
        dead=dead,
        p50_ms=percentile(histogram, 0.50),
        p95_ms=percentile(histogram, 0.95),
    )


def percentile(histogram, q: float) -> int | None:
    """The duration at fraction `q` of (duration, _, count) rows, as PostgreSQL's
    percentile_disc has it: the smallest duration with at least q of the rows at or
    below it."""
    counts: Counter = Counter()
    for duration, _succeeded, n in histogram:
        counts[duration] += n
    total = sum(counts.values())
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for duration in sorted(counts):
        seen += counts[duration]
        if seen >= rank:
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


def failing_endpoints(now: datetime, limit: int = FAILING_LIMIT) -> tuple[list[Endpoint], int]:
    """Endpoints in trouble, worst first, each with its latest error, and how many there
    are: failing (a failure streak), circuit open or half-open, or switched off by the
    system (sustained failure, 410 Gone). Endpoints switched off by people are not
    failing."""
    trouble = (
        Q(health__failing_since__isnull=False)
        | Q(health__consecutive_failures__gt=0)
        | Q(health__circuit_state__in=(CircuitState.OPEN, CircuitState.HALF_OPEN))
        | Q(enabled=False, disabled_kind__in=SELF_DISABLED)
    )
    # Newest delivery with an error: a walk down the (endpoint, -created_at) index.
    latest_failure = (
        Delivery.objects.filter(endpoint=OuterRef("pk"))
        .exclude(last_error="")
        .order_by("-created_at")
    )
    rows = (
        Endpoint.objects.filter(trouble)
        .select_related("partner", "health")
        .annotate(
            last_error=Subquery(latest_failure.values("last_error")[:1]),
            severity=Case(
                When(enabled=False, then=Value(0)),
                When(health__circuit_state=CircuitState.OPEN, then=Value(1)),
                When(health__circuit_state=CircuitState.HALF_OPEN, then=Value(1)),
                default=Value(2),
                output_field=IntegerField(),
            ),
        )
        .order_by(
            "severity",
            F("health__failing_since").asc(nulls_last=True),
            "-health__consecutive_failures",
            "pk",
        )
    )
    return list(rows[:limit]), Endpoint.objects.filter(trouble).count()


# --- the live figures ------------------------------------------------------------------


class _Slot(Func):
    """The STEP-second slot a timestamp falls in (seconds since the epoch // STEP)."""

    arity = 1
    output_field = IntegerField()

    def as_sql(self, compiler, connection, **extra):  # PostgreSQL
        template = f"CAST(FLOOR(EXTRACT(EPOCH FROM %(expressions)s) / {STEP}) AS bigint)"
        return super().as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        # '%%' is a literal '%' once Django's SQLite cursor has put its '?' in.
        return f"(CAST(strftime('%%s', {sql}) AS INTEGER) / {STEP})", params


class _Percentile(Aggregate):
    """PostgreSQL's percentile_disc(q): the smallest value with q of the group at or
    below it (`percentile` computes the same from a histogram elsewhere)."""

    function = "PERCENTILE_DISC"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = IntegerField()

    def __init__(self, expression, fraction: float, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


def live(*, refresh: bool = False) -> dict:
    """The live figures (JSON-ready), computed at most every LIVE_CACHE_SECONDS."""
    cache = caches["shared"]
    if not refresh:
        cached = cache.get(LIVE_CACHE_KEY)
        if cached is not None:
            return cached
    result = compute_live(timezone.now())
    cache.set(LIVE_CACHE_KEY, result, LIVE_CACHE_SECONDS)
    return result


def compute_live(now: datetime) -> dict:
    """The last hour in STEP-second slots (rates per second; the newest slot, still
    filling, over the seconds it has had) and the state right now."""
    last = int(now.timestamp()) // STEP
    first = last - LIVE_SLOTS + 1
    start = datetime.fromtimestamp(first * STEP, tz=UTC)
    elapsed = max(1.0, now.timestamp() - last * STEP)
    spans = [STEP] * (LIVE_SLOTS - 1) + [elapsed]
    events = dict(
        Event.objects.filter(created_at__gte=start)
        .order_by()
        .annotate(slot=_Slot("created_at"))
        .values("slot")
        .annotate(n=Count("created_at"))
        .values_list("slot", "n")
    )
    attempts, hour = _attempt_slots(start)
    series = {"t": [], "events": [], "ok": [], "failed": [], "success_rate": []}
    series.update(p50_ms=[], p95_ms=[])
    for i, span in enumerate(spans):
        slot = first + i
        row = attempts.get(slot, {})
        ok, failed = row.get("ok", 0), row.get("failed", 0)
        success = rate(ok, failed)
        series["t"].append(slot * STEP)
        series["events"].append(round(events.get(slot, 0) / span, 2))
        series["ok"].append(round(ok / span, 2))
        series["failed"].append(round(failed / span, 2))
        series["success_rate"].append(None if success is None else round(success, 1))
        series["p50_ms"].append(row.get("p50"))
        series["p95_ms"].append(row.get("p95"))
    recent = slice(-6, None)  # the last minute
    minute = sum(spans[recent])
    minute_events = sum(events.get(first + i, 0) for i in range(LIVE_SLOTS)[recent])
    backlog = due_backlog(now)
    in_flight = count_bounded(Delivery.objects.filter(status=DeliveryStatus.IN_FLIGHT))
    # Switched-on endpoints whose circuit is open or probing (the health table is small).
    open_circuits = sorted(
        EndpointHealth.objects.filter(
            circuit_state__in=(CircuitState.OPEN, CircuitState.HALF_OPEN), endpoint__enabled=True
        ).values_list("pk", flat=True)
    )
    waiting = waiting_by_reason(now)
    ok_total = sum(r.get("ok", 0) for r in attempts.values())
    failed_total = sum(r.get("failed", 0) for r in attempts.values())
    success_total = rate(ok_total, failed_total)
    return {
        "computed_at": now.isoformat(),
        "step_seconds": STEP,
        "utc_offset_seconds": int(timezone.localtime(now).utcoffset().total_seconds()),
        "series": series,
        "hour": {
            "events": sum(events.values()),
            "attempts_ok": ok_total,
            "attempts_failed": failed_total,
            "success_rate": None if success_total is None else round(success_total, 1),
            **hour,
        },
        "events_per_s_last_minute": round(minute_events / minute, 2),
        "backlog": {"count": backlog.due.value, "exact": backlog.due.exact},
        "backlog_age_seconds": (
            None
            if backlog.oldest_due_at is None
            else max(0, int((now - backlog.oldest_due_at).total_seconds()))
        ),
        "in_flight": {"count": in_flight.value, "exact": in_flight.exact},
        "open_circuits": len(open_circuits),
        "open_circuit_endpoints": open_circuits,
        "waiting": waiting.as_json(),
    }


def _attempt_slots(start: datetime) -> tuple[dict[int, dict], dict]:
    """Per slot since `start`: ok, failed, p50, p95; and the hour's p50_ms and p95_ms."""
    attempts = DeliveryAttempt.objects.filter(started_at__gte=start).order_by()
    if connection.vendor == "postgresql":
        rows = (
            attempts.annotate(slot=_Slot("started_at"))
            .values("slot")
            .annotate(
                ok=Count("started_at", filter=Q(succeeded=True)),
                failed=Count("started_at", filter=Q(succeeded=False)),
                p50=_Percentile("duration_ms", 0.50),
                p95=_Percentile("duration_ms", 0.95),
            )
        )
        hour = attempts.aggregate(
            p50_ms=_Percentile("duration_ms", 0.50), p95_ms=_Percentile("duration_ms", 0.95)
        )
        return {row["slot"]: row for row in rows}, hour
    # Elsewhere (SQLite, the embedded default): a histogram, percentiles in Python.
    histogram = defaultdict(list)
    for slot, duration, succeeded, n in (
        attempts.annotate(slot=_Slot("started_at"))
        .values("slot", "duration_ms", "succeeded")
        .annotate(n=Count("started_at"))
        .values_list("slot", "duration_ms", "succeeded", "n")
    ):
        histogram[slot].append((duration, succeeded, n))
    slots = {
        slot: {
            "ok": sum(n for _, succeeded, n in rows if succeeded),
            "failed": sum(n for _, succeeded, n in rows if not succeeded),
            "p50": percentile(rows, 0.50),
            "p95": percentile(rows, 0.95),
        }
        for slot, rows in histogram.items()
    }
    everything = [row for rows in histogram.values() for row in rows]
    return slots, {"p50_ms": percentile(everything, 0.50), "p95_ms": percentile(everything, 0.95)}


@dataclass
class Waiting:
    """Waiting deliveries by reason, and the endpoints behind each reason."""

    counts: dict[str, int]
    endpoints: dict[str, set[int]]
    exact: bool  # False: more than WAITING_CAP rows wait; the counts are lower bounds
    now: datetime

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_json(self) -> dict:
        return {
            "exact": self.exact,
            "total": self.total,
            "reasons": {r: self.counts[r] for r in WAITING_REASONS},
            "endpoints": {r: sorted(self.endpoints[r]) for r in WAITING_REASONS},
        }


# One pass over at most WAITING_CAP waiting rows (an index-only scan of the partial index
# `delivery_endpoint_due`), joined to the endpoint's switch, its partner's and its health
# row. Table names and constants only; the values are parameters.
_WAITING_SQL = """
SELECT w.endpoint_id, e.enabled AND p.is_active, e.rate_limit_per_second, h.circuit_state,
       w.slot, COUNT(*)
FROM (SELECT endpoint_id,
             CASE WHEN next_attempt_at IS NULL THEN 'held'
                  WHEN next_attempt_at <= %s THEN 'overdue'
                  WHEN next_attempt_at <= %s THEN 'due' ELSE 'later' END AS slot
      FROM deliveries_delivery WHERE status IN ('pending', 'retrying') LIMIT %s) w
JOIN endpoints_endpoint e ON e.id = w.endpoint_id
JOIN endpoints_partner p ON p.id = e.partner_id
LEFT JOIN deliveries_endpointhealth h ON h.endpoint_id = w.endpoint_id
GROUP BY 1, 2, 3, 4, 5
"""


def waiting_by_reason(now: datetime) -> Waiting:
    """Why the waiting deliveries have not gone (`waiting_reason`), counted per reason
    with the endpoints behind each."""
    counts = dict.fromkeys(WAITING_REASONS, 0)
    endpoints = {reason: set() for reason in WAITING_REASONS}
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(_WAITING_SQL, [adapt(now - OVERDUE), adapt(now), WAITING_CAP])
        rows = cursor.fetchall()
    seen = 0
    for endpoint_id, switched_on, rate_limit, circuit, slot, n in rows:
        reason = waiting_reason(
            switched_on=bool(switched_on), circuit=circuit, rate_limited=bool(rate_limit), slot=slot
        )
        counts[reason] += n
        endpoints[reason].add(endpoint_id)
        seen += n
    return Waiting(counts, endpoints, exact=seen < WAITING_CAP, now=now)


def waiting_reason(*, switched_on: bool, circuit: str | None, rate_limited: bool, slot: str) -> str:
    """Why a waiting delivery waits, as deliveries.explain words it for one delivery:
    its endpoint (or partner) is switched off; its circuit is open or half-open; it is
    held (no next attempt time: queued behind an earlier delivery of an ordered
    endpoint); due for over a second at a rate-limited endpoint; due; or a retry
    scheduled for later. `slot`: "held", "overdue" (due over OVERDUE ago), "due" or
    "later"."""
    if not switched_on:
        return "endpoint_off"
    if circuit in (CircuitState.OPEN, CircuitState.HALF_OPEN):
        return "circuit_open"
    if slot == "held":
        return "ordered"  # lifecycle.hold_ordered parks an ordered queue but its head
    if slot == "overdue" and rate_limited:
        return "rate_limited"
    if slot in ("due", "overdue"):
        return "due"
    return "later"
