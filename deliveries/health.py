"""Endpoint health: the circuit breaker, the failure streak, auto-disable, the rate
bucket and the drain lease — the only writer of `EndpointHealth`.

    closed ──N failures in a row──► open ──cooldown over──► half_open (one probe)
      ▲                              ▲                          │
      └────────── probe succeeded ───┼──────────────────────────┤
                                     └──── probe failed (cooldown doubles) ◄┘
    failing for the whole auto-disable window, or 410 Gone → endpoint switched off
    (warned before, at 50/75/90 % of the window: each stage once per failure streak)

Every change is a conditional UPDATE of the endpoint's own health row: the endpoint's
configuration row is never locked by delivery, and at most one worker (the holder of
the drain lease) writes a health row at a time. What people are told about it (mails,
operational events) is `deliveries.notices`, run after the state is committed.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from deliveries import lifecycle, notices
from deliveries.models import CircuitState, EndpointHealth
from deliveries.policy import (
    WARNING_STAGES,
    CircuitPolicy,
    circuit_cooldown,
    circuit_should_open,
    should_auto_disable,
    warning_stage,
)
from endpoints.models import Endpoint
from endpoints.services import endpoint_disable

logger = logging.getLogger(__name__)


def circuit_policy() -> CircuitPolicy:
    return CircuitPolicy(
        threshold=settings.WEBHOOKHUB_CIRCUIT_FAILURE_THRESHOLD,
        cooldown=settings.WEBHOOKHUB_CIRCUIT_COOLDOWN_SECONDS,
        max_cooldown=settings.WEBHOOKHUB_CIRCUIT_MAX_COOLDOWN_SECONDS,
        disable_after=settings.WEBHOOKHUB_AUTO_DISABLE_AFTER_HOURS * 3600,
    )


def ensure(endpoint_ids: Iterable[int]) -> None:
    """Every endpoint has its health row (created with the endpoint; this covers rows
    made by bulk inserts)."""
    EndpointHealth.objects.bulk_create(
        [EndpointHealth(endpoint_id=pk) for pk in endpoint_ids], ignore_conflicts=True
    )


def of(endpoint_id: int) -> EndpointHealth:
    health = EndpointHealth.objects.filter(pk=endpoint_id).first()
    if health is None:
        ensure([endpoint_id])
        health = EndpointHealth.objects.get(pk=endpoint_id)
    return health


# --- the drain lease: one worker claims and sends an endpoint's deliveries at a time ---


def drain_acquire(endpoint_id: int, holder: str, *, ttl: timedelta, now: datetime) -> bool:
    """Take the endpoint's drain lease if it is free (or already ours)."""
    free = Q(drain_until__isnull=True) | Q(drain_until__lt=now) | Q(drain_holder=holder)
    taken = EndpointHealth.objects.filter(free, pk=endpoint_id).update(
        drain_holder=holder, drain_until=now + ttl
    )
    if not taken and not EndpointHealth.objects.filter(pk=endpoint_id).exists():
        if not Endpoint.objects.filter(pk=endpoint_id).exists():
            return False
        ensure([endpoint_id])
        return drain_acquire(endpoint_id, holder, ttl=ttl, now=now)
    return bool(taken)


def drain_renew(endpoint_ids: Sequence[int], holder: str, *, ttl: timedelta, now: datetime):
    """Extend our drain leases; returns the health rows we still hold (fresh)."""
    EndpointHealth.objects.filter(pk__in=list(endpoint_ids), drain_holder=holder).update(
        drain_until=now + ttl
    )
    return {
        h.pk: h
        for h in EndpointHealth.objects.filter(pk__in=list(endpoint_ids), drain_holder=holder)
    }


def drain_release(endpoint_ids: Sequence[int], holder: str) -> None:
    """Give the leases back; `drain_until` keeps when (the dispatcher reads it)."""
    EndpointHealth.objects.filter(pk__in=list(endpoint_ids), drain_holder=holder).update(
        drain_holder="", drain_until=timezone.now()
    )


# --- circuit ---------------------------------------------------------------------------


def probe_start(endpoint_id: int, *, until: datetime, now: datetime) -> bool:
    """Open circuit whose cooldown is over → half-open: the caller sends one probe."""
    return bool(
        EndpointHealth.objects.filter(
            pk=endpoint_id, circuit_state=CircuitState.OPEN, circuit_retry_at__lte=now
        ).update(circuit_state=CircuitState.HALF_OPEN, circuit_retry_at=until)
        or EndpointHealth.objects.filter(
            # A half-open circuit whose probe's claim ran out (its worker died).
            pk=endpoint_id,
            circuit_state=CircuitState.HALF_OPEN,
            circuit_retry_at__lte=now,
        ).update(circuit_retry_at=until)
    )


# Closed with no streak: after a successful probe, or a fresh start.
CLOSED_AND_CLEAN = {
    "circuit_state": CircuitState.CLOSED,
    "circuit_retry_at": None,
    "circuit_opened_at": None,
    "circuit_open_count": 0,
    "consecutive_failures": 0,
    "failing_since": None,
    "failure_warning_stage": 0,
}


def probe_now(endpoint_id: int, *, now: datetime) -> bool:
    """An open circuit's cooldown ends now: the next drain sends the probe. False if the
    circuit is not open."""
    return bool(
        EndpointHealth.objects.filter(pk=endpoint_id, circuit_state=CircuitState.OPEN).update(
            circuit_retry_at=now
        )
    )


def close(endpoint_id: int) -> bool:
    """Close the circuit by hand (support knows the receiver is back): closed, no streak;
    everything waiting behind it goes. False if it was closed already."""
    ensure([endpoint_id])
    closed = bool(
        EndpointHealth.objects.filter(pk=endpoint_id)
        .exclude(circuit_state=CircuitState.CLOSED)
        .update(**CLOSED_AND_CLEAN)
    )
    if closed:
        notices.circuit_changed(endpoint_id, opened=False)
    return closed


def reset(endpoint_id: int) -> None:
    """A fresh start (the endpoint was switched on): closed, no streak."""
    ensure([endpoint_id])
    EndpointHealth.objects.filter(pk=endpoint_id).update(**CLOSED_AND_CLEAN)


@dataclass
class Aftermath:
    """What a batch of results changed, for the caller to act on after commit."""

    recovered: list[int] = field(default_factory=list)
    disable: list[tuple[int, str, str]] = field(default_factory=list)  # (id, kind, reason)
    opened: list[int] = field(default_factory=list)  # a closed circuit opened
    warn: list[tuple[int, int]] = field(default_factory=list)  # (id, warning stage reached)


def after_attempts(
    results: Sequence[tuple[int, bool, int | None]],
    *,
    now: datetime,
    known: dict[int, EndpointHealth] | None = None,
) -> Aftermath:
    """Update health from (endpoint id, succeeded, status code) in completion order.

    Called in the transaction that records the attempts, after the delivery rows.
    `known`: the caller's copy of the health rows (a drain's, refreshed at least every
    second and after every failure); an endpoint that only succeeded and was closed
    with no streak there costs no statement at all.
    """
    by_endpoint = defaultdict(list)
    for endpoint_id, ok, status_code in results:
        by_endpoint[endpoint_id].append((ok, status_code))
    after = Aftermath()
    for endpoint_id, group in sorted(by_endpoint.items()):  # pk order: one lock order
        if any(code == 410 for _, code in group):
            after.disable.append((endpoint_id, Endpoint.DisabledBy.GONE, "receiver answered 410"))
            continue
        trailing = 0
        for ok, _ in group:
            trailing = 0 if ok else trailing + 1
        state = (known or {}).get(endpoint_id)
        healthy = (
            state is not None
            and state.circuit_state == CircuitState.CLOSED
            and state.consecutive_failures == 0
        )
        if trailing == 0 and healthy:
            continue
        if trailing < len(group) and _succeeded(endpoint_id):
            after.recovered.append(endpoint_id)
        if trailing:
            _failed(endpoint_id, trailing, now=now, after=after)
    return after


def _succeeded(endpoint_id: int) -> bool:
    """Reset the streak; close an open circuit. True if it was open (recovered)."""
    EndpointHealth.objects.filter(
        pk=endpoint_id, circuit_state=CircuitState.CLOSED, consecutive_failures__gt=0
    ).update(consecutive_failures=0, failing_since=None, failure_warning_stage=0)
    return bool(
        EndpointHealth.objects.filter(pk=endpoint_id)
        .exclude(circuit_state=CircuitState.CLOSED)
        .update(**CLOSED_AND_CLEAN)
    )


def _failed(endpoint_id: int, failures: int, *, now: datetime, after: Aftermath) -> None:
    """Count failures; open (or re-open) the circuit; note in `after` an auto-disable
    when the endpoint has failed for the whole window, else a warning stage reached."""
    policy = circuit_policy()
    EndpointHealth.objects.filter(pk=endpoint_id).update(
        consecutive_failures=F("consecutive_failures") + failures
    )
    EndpointHealth.objects.filter(pk=endpoint_id, failing_since__isnull=True).update(
        failing_since=now
    )
    health = EndpointHealth.objects.get(pk=endpoint_id)
    if health.circuit_state == CircuitState.CLOSED and circuit_should_open(
        health.consecutive_failures, policy
    ):
        after.opened.append(endpoint_id)
    if health.circuit_state == CircuitState.HALF_OPEN or (
        health.circuit_state == CircuitState.CLOSED
        and circuit_should_open(health.consecutive_failures, policy)
    ):
        opens = health.circuit_open_count + 1
        EndpointHealth.objects.filter(pk=endpoint_id).update(
            circuit_state=CircuitState.OPEN,
            circuit_open_count=opens,
            circuit_opened_at=health.circuit_opened_at or now,
            circuit_retry_at=now + circuit_cooldown(opens, policy),
        )
        logger.warning(
            "circuit opened",
            extra={"endpoint_id": endpoint_id, "failures": health.consecutive_failures},
        )
    if should_auto_disable(health.failing_since, now, policy):
        reason = f"auto: failing since {health.failing_since:%Y-%m-%d %H:%M} UTC"
        after.disable.append((endpoint_id, Endpoint.DisabledBy.AUTO, reason))
    elif stage := _warning_due(health, now=now, policy=policy):
        after.warn.append((endpoint_id, stage))


def _warning_due(health: EndpointHealth, *, now: datetime, policy: CircuitPolicy) -> int:
    """Mark the warning stage this streak has reached if it was not sent yet; returns
    it (0: nothing to send). Conditional: of two callers only one gets the stage."""
    stage = warning_stage(health.failing_since, now, policy)
    if stage <= health.failure_warning_stage:
        return 0
    marked = EndpointHealth.objects.filter(
        pk=health.pk, failing_since=health.failing_since, failure_warning_stage__lt=stage
    ).update(failure_warning_stage=stage)
    return stage if marked else 0


def failure_warnings(*, now: datetime | None = None) -> int:
    """Warn about the failing endpoints whose streak reached a warning stage not sent
    yet — also those with no attempt now (an open circuit waiting out a long cooldown).
    Run by the hourly housekeeping and once per dispatcher loop; one indexed query
    when there is nothing to send. Returns the warnings sent."""
    now = now or timezone.now()
    policy = circuit_policy()
    first = now - timedelta(seconds=policy.disable_after * min(WARNING_STAGES) / 100)
    candidates = (
        EndpointHealth.objects.filter(failing_since__lte=first, endpoint__enabled=True)
        .exclude(failure_warning_stage__gte=max(WARNING_STAGES))
        .order_by("pk")
    )
    sent = 0
    for health in candidates:
        if stage := _warning_due(health, now=now, policy=policy):
            notices.endpoint_failing(health.pk, stage=stage, window=disable_window())
            sent += 1
    return sent


def disable_window() -> timedelta:
    return timedelta(seconds=circuit_policy().disable_after)


def act_on(after: Aftermath, *, now: datetime | None = None) -> list[int]:
    """After the results are committed: release recovered backlogs, switch off what
    must go, tell people. Returns the endpoint ids that have deliveries due now."""
    now = now or timezone.now()
    for endpoint_id in after.recovered:
        released = lifecycle.due_sooner(endpoint_id, now=now)
        endpoint = Endpoint.objects.select_related("partner").filter(pk=endpoint_id).first()
        if endpoint is not None:
            logger.info("endpoint recovered", extra={"endpoint_id": endpoint.public_id})
            notices.endpoint_recovered(endpoint, released=released)
        notices.circuit_changed(endpoint_id, opened=False)
    for endpoint_id in after.opened:
        notices.circuit_changed(endpoint_id, opened=True)
    for endpoint_id, stage in after.warn:
        notices.endpoint_failing(endpoint_id, stage=stage, window=disable_window())
    for endpoint_id, kind, reason in after.disable:
        auto_disable(endpoint_id, kind=kind, reason=reason)
    return list(after.recovered)


def auto_disable(endpoint_id: int, *, kind: str, reason: str) -> bool:
    """Switch an endpoint off on the system's initiative and tell people about it."""
    endpoint = Endpoint.objects.select_related("partner").filter(pk=endpoint_id).first()
    if endpoint is None or not endpoint.enabled:
        return False
    with transaction.atomic():
        switched = endpoint_disable(endpoint, by="system", reason=reason, kind=kind)
        if switched:
            logger.warning(
                "endpoint disabled", extra={"endpoint_id": endpoint.public_id, "reason": reason}
            )
            notices.endpoint_disabled(endpoint)
    return switched


@transaction.atomic
def failure_digest(*, now: datetime | None = None) -> int:
    """Mail the endpoints that are failing, at most once per endpoint per day (hourly
    housekeeping). Returns the number of endpoints reported."""
    now = now or timezone.now()
    day_ago = now - timedelta(days=1)
    unreported = Q(health__failure_notice_at__isnull=True) | Q(
        health__failure_notice_at__lt=day_ago
    )
    endpoints = list(
        Endpoint.objects.filter(unreported, enabled=True, health__failing_since__isnull=False)
        .exclude(health__circuit_state=CircuitState.CLOSED)
        .select_related("partner", "health")
        .order_by("partner__name", "name")
    )
    if not endpoints:
        return 0
    # Marked conditionally: of two digests at once, only one reports an endpoint.
    marked = set()
    for endpoint in sorted(endpoints, key=lambda e: e.pk):  # pk order: one lock order
        if (
            EndpointHealth.objects.filter(pk=endpoint.pk)
            .filter(Q(failure_notice_at__isnull=True) | Q(failure_notice_at__lt=day_ago))
            .update(failure_notice_at=now)
        ):
            marked.add(endpoint.pk)
    endpoints = [e for e in endpoints if e.pk in marked]
    if endpoints:
        notices.failure_digest(endpoints, window=disable_window())
    return len(endpoints)


def bucket_store(health: EndpointHealth) -> None:
    """The database token bucket after a take (`deliveries.ratelimit`)."""
    EndpointHealth.objects.filter(pk=health.pk).update(
        rate_tokens=health.rate_tokens, rate_checked_at=health.rate_checked_at
    )
