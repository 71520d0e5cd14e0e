"""Read queries about deliveries, shared by the management commands and /metrics.

What /metrics runs on every scrape is bounded whatever the table size: counts stop at
`COUNT_CAP` rows (an index range scan with a LIMIT) and beyond that report PostgreSQL's
planner estimate, which comes from the table statistics autovacuum keeps, not from a
scan. Minimums walk an index from one end. Nothing here counts a whole table.
"""

import json
import time
from datetime import datetime
from typing import NamedTuple

from django.db import connections
from django.db.models import Count, Min, QuerySet

from deliveries.dispatch import FAST_PATH_GRACE
from deliveries.models import (
    WAITING_STATUSES,
    CircuitState,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Trigger,
    WorkerLease,
    due_q,
)
from endpoints.models import Endpoint, Partner

COUNT_CAP = 10_000
TEST_POLL_SECONDS = 0.05
# Statuses a delivery can be replayed from: never pending or in flight (those are
# already on their way; sending them again would send them twice).
REPLAYABLE_STATUSES = (
    DeliveryStatus.DEAD,
    DeliveryStatus.RETRYING,
    DeliveryStatus.CANCELLED,
    DeliveryStatus.SUCCEEDED,
)
UNFINISHED_STATUSES = (*WAITING_STATUSES, DeliveryStatus.IN_FLIGHT)


class BoundedCount(NamedTuple):
    value: int
    exact: bool  # False: above COUNT_CAP, the value is the planner's estimate


def count_bounded(
    queryset: QuerySet, cap: int = COUNT_CAP, *, estimate: QuerySet | None = None
) -> BoundedCount:
    """The exact count up to `cap`; above it, the planner's estimate (at least cap + 1)
    for `estimate` (default: `queryset` itself)."""
    queryset = queryset.order_by()
    exact = queryset.values("pk")[: cap + 1].count()
    if exact <= cap:
        return BoundedCount(exact, True)
    return BoundedCount(
        max(cap + 1, estimate_count(queryset if estimate is None else estimate)), False
    )


def estimate_count(queryset: QuerySet) -> int:
    """PostgreSQL's row estimate for `queryset` (no scan); an exact count elsewhere."""
    if connections[queryset.db].vendor != "postgresql":
        return queryset.count()
    plan = json.loads(queryset.order_by().values("pk").explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


def delivery_status_counts() -> dict[str, BoundedCount]:
    """Deliveries per status (each an index range scan over `delivery_status_recent`)."""
    return {
        status: count_bounded(Delivery.objects.filter(status=status))
        for status in DeliveryStatus.values
    }


class Backlog(NamedTuple):
    due: BoundedCount
    oldest_due_at: datetime | None


def due_backlog(now: datetime) -> Backlog:
    """Waiting deliveries already due (not sent yet) and the oldest due time.

    A range over the `delivery_due` partial index (rows waiting behind an open circuit
    or a switched-off endpoint count: they have not been sent).
    """
    due = Delivery.objects.filter(due_q(now))
    oldest = due.order_by().aggregate(oldest=Min("next_attempt_at"))["oldest"]
    # Beyond the cap, estimate on next_attempt_at alone: only waiting (and in-flight) rows
    # have one, and the planner, which assumes columns independent, would multiply the
    # status and time selectivities and underestimate a large backlog tenfold.
    return Backlog(
        count_bounded(due, estimate=Delivery.objects.filter(next_attempt_at__lte=now)), oldest
    )


def expired_leases(now: datetime) -> QuerySet:
    """In-flight deliveries whose worker's lease ran out (the worker died or hung)."""
    return Delivery.objects.filter(status=DeliveryStatus.IN_FLIGHT, claimed_until__lt=now)


def stuck_deliveries(now: datetime) -> dict[str, QuerySet]:
    """What the dispatcher would hand to the workers now, by reason: due retries, first
    attempts the fast path has not taken (their task was lost), expired leases."""
    waiting = Delivery.objects.filter(next_attempt_at__lte=now)
    return {
        "due_retries": waiting.filter(status=DeliveryStatus.RETRYING),
        "lost_first_attempts": waiting.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=now - FAST_PATH_GRACE
        ),
        "expired_leases": expired_leases(now).exclude(next_trigger=Trigger.TEST),
    }


class EndpointCounts(NamedTuple):
    total: int
    disabled: dict[str, int]  # by disabled_kind: manual, auto, gone
    circuits: dict[str, int]  # enabled endpoints by circuit state


def endpoint_counts() -> EndpointCounts:
    """Endpoint health in one grouped query (the endpoint table is small)."""
    disabled = {kind: 0 for kind in Endpoint.DisabledBy.values}
    circuits = {state: 0 for state in CircuitState.values}
    total = 0
    rows = (
        Endpoint.objects.order_by()
        .values("enabled", "disabled_kind", "health__circuit_state")
        .annotate(n=Count("pk"))
    )
    for row in rows:
        total += row["n"]
        if not row["enabled"]:
            kind = row["disabled_kind"] or Endpoint.DisabledBy.MANUAL
            disabled[kind] = disabled.get(kind, 0) + row["n"]
        else:
            circuits[row["health__circuit_state"] or CircuitState.CLOSED] += row["n"]
    return EndpointCounts(total, disabled, circuits)


def dispatcher_heartbeat() -> datetime | None:
    """When a dispatcher loop (running inside a qcluster) last renewed its lease."""
    return (
        WorkerLease.objects.filter(name="dispatcher").values_list("heartbeat_at", flat=True).first()
    )


def deliveries_for_replay(
    *,
    statuses=(DeliveryStatus.DEAD,),
    endpoints: list[Endpoint] | None = None,
    partner: Partner | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_disabled: bool = False,
) -> QuerySet:
    """Deliveries matching the replay filters (created in [since, until)).

    Never pending or in-flight ones, nor those of events whose payload was erased.
    `event_type` is a name or a wildcard (`order.*`, `*`). Deliveries to disabled
    endpoints are left out unless `include_disabled` (replaying them would only park
    them until the endpoint is switched on).
    """
    statuses = [s for s in statuses if s in REPLAYABLE_STATUSES]
    rows = Delivery.objects.filter(status__in=statuses, event__expunged_at__isnull=True)
    if endpoints:
        rows = rows.filter(endpoint__in=endpoints)
    if partner is not None:
        rows = rows.filter(endpoint__partner=partner)
    if event_type and event_type != "*":
        if event_type.endswith(".*"):
            rows = rows.filter(event__event_type__name__startswith=event_type[:-1])
        else:
            rows = rows.filter(event__event_type__name=event_type)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    if not include_disabled:
        rows = rows.filter(endpoint__enabled=True)
    return rows


def delivery_test_attempt(delivery: Delivery, *, wait: float = 0.0) -> DeliveryAttempt | None:
    """The attempt of a test delivery, waiting up to `wait` seconds for a worker to
    record it; None if it is not in yet. `wait` is a short bound set by the caller
    (WEBHOOKHUB_TEST_WAIT_SECONDS for web requests), never the endpoint's timeout."""
    deadline = time.monotonic() + max(0.0, wait)
    attempts = DeliveryAttempt.objects.select_related(
        "delivery__event", "delivery__endpoint"
    ).filter(delivery=delivery)
    while True:
        attempt = attempts.order_by("-number").first()
        if attempt is not None or time.monotonic() >= deadline:
            return attempt
        time.sleep(min(TEST_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
