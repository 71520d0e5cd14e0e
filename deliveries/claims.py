"""Claiming deliveries for sending, and admitting only what each endpoint may take now.

A claim is one conditional UPDATE per group (due, or reserved for us, or an expired
lease → `in_flight` with a fresh lease and our token); zero rows means another worker
has it. Before claiming, the endpoints of the batch are locked (SELECT … FOR UPDATE, in
id order) and each candidate is admitted, deferred or held:

- disabled endpoint → held (`next_attempt_at` NULL) until it is switched on again;
- open circuit → deferred to the probe time; when the probe is due, exactly one
  delivery goes out as the probe (the circuit turns half-open);
- ordered endpoint → only the head of its queue (oldest waiting delivery, by
  created_at then id) may go, and only when nothing else of that endpoint is in
  flight; the others are held until the head succeeds, dies or is cancelled;
- concurrency cap (`max_in_flight`) and rate limit → the excess is deferred briefly.

Test events (`webhookhub.test`, sent on demand) always go, past every gate including
the rate limit: they are how support checks a disabled endpoint or one whose circuit is
open. A test whose lease expired (its worker died) is never claimed again.

Deferring never counts as an attempt.
"""

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Case, Count, DateTimeField, Q, Value, When
from django.utils import timezone

from deliveries import ratelimit
from deliveries.models import Delivery, DeliveryStatus, Trigger
from endpoints.models import CircuitState, Endpoint

WAITING = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
ORDERED_TRIGGERS = (Trigger.AUTO, Trigger.RETRY)  # replays and tests bypass the queue
CAP_RETRY = timedelta(seconds=1)
HELD = None


def connect_timeout_for(timeout_seconds: float) -> float:
    return min(5.0, float(timeout_seconds))


def lease_for(timeout_seconds: int) -> timedelta:
    """How long a claim on a delivery to an endpoint with this timeout lasts."""
    from django.conf import settings

    return timedelta(
        seconds=timeout_seconds
        + connect_timeout_for(timeout_seconds)
        + settings.WEBHOOKHUB_LEASE_MARGIN_SECONDS
    )


def due_q(now: datetime) -> Q:
    """Deliveries anyone may take now: waiting, due and not reserved by the dispatcher
    (fast-path rows carry a reservation without a token: their task may take them), or
    held by an expired lease."""
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now) | Q(lease_token="")
    # An expired test is never taken again: it may have reached the receiver, and a test
    # is sent at most once (the dispatcher marks it dead instead).
    expired = Q(status=DeliveryStatus.IN_FLIGHT, claimed_until__lt=now) & ~Q(
        next_trigger=Trigger.TEST
    )
    return (Q(status__in=WAITING, next_attempt_at__lte=now) & free) | expired


def deliveries_claim(
    ids: Iterable[int], *, token: str | None = None, now: datetime | None = None
) -> tuple[str, list[Delivery]]:
    """Claim those of `ids` that are due (or reserved under `token`) and admitted.

    Returns the lease token and the claimed deliveries with event and endpoint loaded.
    """
    now = now or timezone.now()
    mine = due_q(now)
    if token:
        mine |= Q(status__in=WAITING, lease_token=token, next_attempt_at__lte=now)
    new_token = uuid.uuid4().hex
    with transaction.atomic():
        rows = list(
            Delivery.objects.filter(mine, pk__in=list(ids)).values(
                "pk", "endpoint_id", "created_at", "next_trigger", "attempt_count"
            )
        )
        if not rows:
            return new_token, []
        endpoints = {
            e.pk: e
            for e in Endpoint.objects.select_for_update()
            .filter(pk__in={r["endpoint_id"] for r in rows})
            .order_by("pk")
            .only(
                "enabled", "ordered", "max_in_flight", "rate_limit_per_second", "rate_tokens",
                "rate_checked_at", "timeout_seconds", "circuit_state", "circuit_retry_at",
            )
        }  # fmt: skip
        admitted, later = _admit(rows, endpoints, now=now)
        by_timeout: dict[int, list[int]] = defaultdict(list)
        for row in admitted:
            by_timeout[endpoints[row["endpoint_id"]].timeout_seconds].append(row["pk"])
        for timeout, pks in by_timeout.items():
            # The due condition is repeated here: this UPDATE, not the SELECT, decides.
            Delivery.objects.filter(mine, pk__in=pks).update(
                status=DeliveryStatus.IN_FLIGHT,
                lease_token=new_token,
                claimed_until=now + lease_for(timeout),
                updated_at=now,
            )
        _postpone(later, mine, now=now)
    claimed = list(
        Delivery.objects.filter(lease_token=new_token, status=DeliveryStatus.IN_FLIGHT)
        .select_related("event")
        .order_by("pk")
    )
    # One Endpoint object (one decryption of its secrets) per endpoint, not per row.
    full = Endpoint.objects.in_bulk({d.endpoint_id for d in claimed})
    for delivery in claimed:
        delivery.endpoint = full[delivery.endpoint_id]
    return new_token, claimed


def _admit(rows, endpoints, *, now):
    """Split candidate rows into (admitted, {pk: (attempt_count, until or HELD)})."""
    admitted, later = [], {}
    by_endpoint = defaultdict(list)
    for row in rows:
        by_endpoint[row["endpoint_id"]].append(row)
    candidates = [r["pk"] for r in rows]
    in_flight = dict(
        Delivery.objects.filter(
            endpoint_id__in=list(by_endpoint),
            status=DeliveryStatus.IN_FLIGHT,
            claimed_until__gte=now,
        )
        .exclude(pk__in=candidates)
        .values("endpoint_id")
        .annotate(n=Count("pk"))
        .values_list("endpoint_id", "n")
    )
    for endpoint_id, group in by_endpoint.items():
        endpoint = endpoints[endpoint_id]
        group.sort(key=lambda r: (r["created_at"], r["pk"]))
        # A test event is someone checking the endpoint right now: it always goes, past
        # the switch, the circuit, the cap and the rate limit (SPEC §4, "Test event").
        admitted += [r for r in group if r["next_trigger"] == Trigger.TEST]
        group = [r for r in group if r["next_trigger"] != Trigger.TEST]
        go = _gate(endpoint, group, in_flight.get(endpoint_id, 0), later, now=now)
        waits = ratelimit.take(endpoint, len(go), now=now)
        for row, wait in zip(go, waits, strict=True):
            if wait > 0:
                later[row["pk"]] = (row["attempt_count"], now + timedelta(seconds=wait))
            else:
                admitted.append(row)
    return admitted, later


def _gate(endpoint, group, busy: int, later, *, now) -> list:
    """The rows of one endpoint (tests excluded) that may go now, before rate limiting."""

    def postpone(rows, until):
        for row in rows:
            later[row["pk"]] = (row["attempt_count"], until)

    return _gate_queue(endpoint, group, busy, postpone, now=now)


def _gate_queue(endpoint, group, busy: int, postpone, *, now) -> list:
    if not endpoint.enabled:
        postpone(group, HELD)
        return []
    if endpoint.ordered:
        queued = [r for r in group if r["next_trigger"] in ORDERED_TRIGGERS]
        group = [r for r in group if r["next_trigger"] not in ORDERED_TRIGGERS]
        head = _ordered_head(endpoint)
        for row in queued:
            if head is not None and row["pk"] == head["pk"] and not _head_busy(head, now):
                group.insert(0, row)
            else:
                postpone([row], HELD)
    if endpoint.circuit_state != CircuitState.CLOSED:
        retry_at = endpoint.circuit_retry_at or now
        if retry_at > now or not group:
            postpone(group, max(retry_at, now + CAP_RETRY))
            return []
        # Probe: one delivery goes; the circuit is half-open until its result is in.
        probe, rest = group[0], group[1:]
        Endpoint.objects.filter(pk=endpoint.pk).update(
            circuit_state=CircuitState.HALF_OPEN,
            circuit_retry_at=now + lease_for(endpoint.timeout_seconds),
        )
        postpone(rest, now + lease_for(endpoint.timeout_seconds))
        group = [probe]
    room = max(0, endpoint.max_in_flight - busy)
    postpone(group[room:], now + CAP_RETRY)
    return group[:room]


def _ordered_head(endpoint):
    return (
        Delivery.objects.filter(
            endpoint=endpoint,
            status__in=(*WAITING, DeliveryStatus.IN_FLIGHT),
            next_trigger__in=ORDERED_TRIGGERS,
        )
        .order_by("created_at", "pk")
        .values("pk", "status", "claimed_until")
        .first()
    )


def _head_busy(head, now) -> bool:
    return head["status"] == DeliveryStatus.IN_FLIGHT and head["claimed_until"] >= now


def _postpone(later: dict, mine: Q, *, now: datetime) -> None:
    """Put deferred/held rows back to waiting without counting an attempt."""
    for first_attempt in (True, False):
        rows = {pk: until for pk, (count, until) in later.items() if (count == 0) is first_attempt}
        held = [pk for pk, until in rows.items() if until is HELD]
        deferred = {pk: until for pk, until in rows.items() if until is not HELD}
        common = {
            "status": DeliveryStatus.PENDING if first_attempt else DeliveryStatus.RETRYING,
            "lease_token": "",
            "claimed_until": None,
            "updated_at": now,
        }
        if held:
            Delivery.objects.filter(mine, pk__in=held).update(next_attempt_at=None, **common)
        if deferred:
            whens = [When(pk=pk, then=Value(until)) for pk, until in deferred.items()]
            Delivery.objects.filter(mine, pk__in=list(deferred)).update(
                next_attempt_at=Case(*whens, output_field=DateTimeField()), **common
            )


def ordered_release_next(endpoint_ids: Iterable[int], *, now: datetime) -> list[int]:
    """Make the new head of each ordered endpoint's queue due; returns its ids."""
    released = []
    for endpoint in Endpoint.objects.filter(pk__in=list(endpoint_ids), ordered=True):
        head = (
            Delivery.objects.filter(
                endpoint=endpoint, status__in=WAITING, next_trigger__in=ORDERED_TRIGGERS
            )
            .order_by("created_at", "pk")
            .values("pk", "next_attempt_at")
            .first()
        )
        if head and head["next_attempt_at"] is None:
            Delivery.objects.filter(pk=head["pk"], next_attempt_at__isnull=True).update(
                next_attempt_at=now, updated_at=now
            )
            released.append(head["pk"])
    return released
