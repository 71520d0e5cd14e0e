"""The worker side of delivery: drain endpoints — claim their due deliveries in
batches, send them concurrently, record what happened in batches.

A drain holds an endpoint's drain lease (`EndpointHealth`, one holder at a time across
all clusters), so it is the only claimer of that endpoint: it keeps up to
`max_in_flight` requests going, tops the window up as answers come back, and stops
when the endpoint has nothing due (after lingering briefly if no other task waits for
a worker), when its time budget is spent, or when the cluster stops. However work
arrives — one publish per transaction or a thousand — claims and records are
amortised over whatever is due: one UPDATE … RETURNING claims a batch, one multi-row
INSERT and a few UPDATEs record it.

Which deliveries may go now (switch, circuit, ordered queue, cap, rate limit) is
decided here, per endpoint, from its configuration and health; each status change is
`deliveries.lifecycle`; circuit and streak are `deliveries.health`. The lease on each
delivery outlasts the endpoint's timeout and a request starts only if it fits in what
is left of it, so a slow request is never handed to a second worker, and a worker that
dies leaves leases that expire and make the rows due again.
"""

import logging
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from deliveries import cluster, health, lifecycle, metrics, notices, ratelimit, signing, transport
from deliveries.dispatch import wake
from deliveries.models import (
    CircuitState,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    EndpointHealth,
    Trigger,
)
from deliveries.policy import RetryPolicy, next_delay
from endpoints.models import Endpoint

logger = logging.getLogger(__name__)

DRAIN_LEASE = timedelta(seconds=10)  # renewed every RENEW_SECONDS while draining
RENEW_SECONDS = 1.0
LINGER_POLL_SECONDS = 0.01
TEST_BATCH = 20


def connect_timeout_for(timeout_seconds: float) -> float:
    return min(5.0, float(timeout_seconds))


def lease_for(timeout_seconds: int) -> timedelta:
    """How long a claim on a delivery to an endpoint with this timeout lasts."""
    return timedelta(
        seconds=timeout_seconds
        + connect_timeout_for(timeout_seconds)
        + settings.WEBHOOKHUB_LEASE_MARGIN_SECONDS
    )


@dataclass
class Outcome:
    delivery: Delivery
    request: transport.OutboundRequest
    result: transport.AttemptResult | None  # None: not sent, the lease ran short
    started_at: datetime


def build_request(delivery: Delivery, *, now: datetime) -> transport.OutboundRequest:
    """The signed request for this delivery's next attempt: same body every time."""
    endpoint = delivery.endpoint
    body = delivery.event.body.encode()
    signed = signing.webhook_headers(
        msg_id=delivery.event.public_id,
        timestamp=int(now.timestamp()),
        body=body,
        secrets=endpoint.active_secrets(now),
    )
    headers = transport.compose_headers(
        signed=signed, custom=endpoint.headers, bearer_token=endpoint.auth_token or None
    )
    return transport.OutboundRequest(
        url=endpoint.url,
        body=body,
        headers=headers,
        secret_header_names=frozenset(name.lower() for name in endpoint.headers or {}),
        timeout=float(endpoint.timeout_seconds),
        connect_timeout=connect_timeout_for(endpoint.timeout_seconds),
        allow_private=settings.WEBHOOKHUB_ALLOW_PRIVATE_URLS,
    )


_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None


def _executor() -> ThreadPoolExecutor:
    """One thread pool per worker process (rebuilt after a fork)."""
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():
        _pool = ThreadPoolExecutor(
            max_workers=settings.WEBHOOKHUB_SEND_CONCURRENCY, thread_name_prefix="webhookhub-send"
        )
        _pool_pid = os.getpid()
    return _pool


def _send_one(delivery: Delivery, request: transport.OutboundRequest) -> Outcome:
    started_at = timezone.now()
    # Start only if the whole request fits in what is left of the lease; otherwise the
    # lease could expire mid-request and a second worker send the same delivery.
    latest_start = delivery.claimed_until - timedelta(
        seconds=request.timeout + connect_timeout_for(request.timeout)
    )
    if started_at > latest_start:
        return Outcome(delivery, request, None, started_at)
    return Outcome(delivery, request, transport.send(request), started_at)


# --- one endpoint being drained --------------------------------------------------------


@dataclass
class _Lane:
    endpoint: Endpoint
    health: EndpointHealth
    mine: int = 0  # our requests in flight (tests excluded)
    others: int = 0  # requests under other leases (a previous holder's, a CLI test)
    probing: bool = False
    dry: bool = False  # the last claim found nothing due
    rate_wait_until: float = 0.0  # monotonic time the rate limit lets the next one go

    @property
    def pk(self) -> int:
        return self.endpoint.pk

    def lease(self) -> timedelta:
        return lease_for(self.endpoint.timeout_seconds)


@dataclass
class _Drain:
    holder: str
    token: str
    lanes: dict[int, _Lane] = field(default_factory=dict)
    in_flight: dict[Future, int] = field(default_factory=dict)  # future → endpoint id
    outcomes: list[Outcome] = field(default_factory=list)

    def claim(self, lane: _Lane, *, now: datetime) -> list[Delivery]:
        """The deliveries of this lane that may go now, claimed. Each is marked with
        whether it counts toward the lane's `max_in_flight` (`counted`)."""
        claim = _claimer(lane, token=self.token, now=now)
        endpoint, state = lane.endpoint, lane.health
        room = endpoint.max_in_flight - lane.mine - lane.others
        held_back = (
            not endpoint.enabled
            or state.circuit_state != CircuitState.CLOSED
            or endpoint.ordered
            or endpoint.rate_limit_per_second
            or room <= 0
        )
        if not held_back:
            # The everyday case: one statement takes whatever is due, tests included.
            return self._took(lane, [], claim("any", room))
        # Something holds the endpoint's deliveries back. A test event is someone
        # checking the endpoint right now: it goes past the switch, the circuit, the cap
        # and the rate limit (SPEC §4, "Test event"), not counted toward the cap.
        tests = claim("tests", TEST_BATCH)
        if not endpoint.enabled:
            return self._took(lane, tests, [])
        if state.circuit_state != CircuitState.CLOSED:
            if (
                lane.probing
                or room <= 0
                or not health.probe_start(lane.pk, until=now + lane.lease(), now=now)
            ):
                return self._took(lane, tests, [])
            # Probe: one delivery goes; the circuit is half-open until its result is in.
            state.circuit_state = CircuitState.HALF_OPEN
            if endpoint.ordered:
                probe = _ordered_next(lane, claim, now=now)
            else:
                oldest = lifecycle.oldest_due(lane.pk, now=now)
                probe = claim("pk", 1, oldest) if oldest else []
            lane.probing = bool(probe)
            return self._took(lane, tests, probe)
        if room > 0 and endpoint.rate_limit_per_second:
            room = self._rate_room(lane, room, now=now)
        taken = []
        if room > 0:
            if endpoint.ordered:
                taken = claim("unordered", room)
                if len(taken) < room:
                    taken += _ordered_next(lane, claim, now=now)
            else:
                taken = claim("others", room)
        return self._took(lane, tests, taken)

    @staticmethod
    def _took(lane: _Lane, uncounted: list[Delivery], counted: list[Delivery]) -> list:
        for delivery in uncounted:
            delivery.counted = False
        for delivery in counted:
            delivery.counted = True
        lane.mine += len(counted)
        waiting_for_token = lane.rate_wait_until > time.monotonic()
        lane.dry = not (uncounted or counted) and not waiting_for_token
        return uncounted + counted

    def _rate_room(self, lane: _Lane, room: int, *, now: datetime) -> int:
        if lane.rate_wait_until > time.monotonic():
            return 0
        due = (
            Delivery.objects.filter(endpoint_id=lane.pk, status__in=("pending", "retrying"))
            .filter(next_attempt_at__lte=now)
            .exclude(next_trigger=Trigger.TEST)
            .values_list("pk", flat=True)[:room]
        )
        wanted = len(due)
        if not wanted:
            return 0
        waits = ratelimit.take(lane.endpoint, wanted, now=now, health=lane.health)
        granted = sum(1 for w in waits if w <= 0)
        if granted < wanted:
            lane.rate_wait_until = time.monotonic() + min(w for w in waits if w > 0)
        return granted


def _claimer(lane: _Lane, *, token: str, now: datetime):
    def claim(which: str, limit: int, pk: int | None = None) -> list[Delivery]:
        return lifecycle.claim(
            lane.pk, limit=limit, token=token, lease=lane.lease(), now=now, which=which, pk=pk
        )

    return claim


def _ordered_next(lane: _Lane, claim, *, now: datetime) -> list[Delivery]:
    """An ordered endpoint: its queue's head, only when nothing of the queue is in
    flight; the rest of the queue is held until the head is done."""
    head = lifecycle.ordered_head(lane.pk)
    if head is None:
        return []
    lifecycle.hold_ordered(lane.pk, head_pk=head["pk"], now=now)
    if head["status"] == DeliveryStatus.IN_FLIGHT:
        return []
    if head["next_attempt_at"] is None:
        lifecycle.release_ordered([lane.pk], now=now)
    return claim("pk", 1, head["pk"])


def _load_lanes(endpoint_ids: Sequence[int], *, token: str, now: datetime) -> dict[int, _Lane]:
    # One Endpoint object (one decryption of its secrets) per endpoint, not per row.
    endpoints = Endpoint.objects.in_bulk(list(endpoint_ids))
    states = EndpointHealth.objects.in_bulk(list(endpoint_ids))
    lanes = {}
    for pk in endpoint_ids:
        if pk in endpoints and pk in states:
            lane = _Lane(endpoints[pk], states[pk])
            lane.others = lifecycle.in_flight_count(pk, now=now, exclude_token=token)
            lanes[pk] = lane
    return lanes


def drain(
    endpoint_ids: Iterable[int], *, budget: float | None = None, linger: float | None = None
) -> list[Outcome]:
    """Deliver what is due for these endpoints until there is nothing left, the budget
    (seconds) is spent or the cluster stops. Endpoints someone else is draining are
    skipped (their drain picks up the new work). Returns the attempts made."""
    budget = settings.WEBHOOKHUB_DRAIN_SECONDS if budget is None else budget
    linger = settings.WEBHOOKHUB_DRAIN_LINGER_SECONDS if linger is None else linger
    run = _Drain(holder=f"{os.getpid()}-{uuid.uuid4().hex[:12]}", token=uuid.uuid4().hex)
    now = timezone.now()
    wanted = list(dict.fromkeys(endpoint_ids))
    held = [pk for pk in wanted if health.drain_acquire(pk, run.holder, ttl=DRAIN_LEASE, now=now)]
    if not held:
        return []
    run.lanes = _load_lanes(held, token=run.token, now=now)
    _commit_without_waiting(True)
    started = time.monotonic()
    renew_at = started + RENEW_SECONDS
    idle_since = None
    try:
        while True:
            clock = time.monotonic()
            if clock >= renew_at:
                _renew(run)
                renew_at = clock + RENEW_SECONDS
            stop = cluster.stopping() or clock - started >= budget or not run.lanes
            if not stop:
                _fill(run)
            if not run.in_flight:
                if stop:
                    break
                if any(not lane.dry for lane in run.lanes.values()):
                    pause = min(
                        (lane.rate_wait_until for lane in run.lanes.values()), default=clock
                    )
                    time.sleep(max(0.0, min(pause - time.monotonic(), 0.25)))
                    continue
                # Nothing due: linger a moment for more if nobody else needs the worker.
                idle_since = idle_since or clock
                if clock - idle_since >= linger or cluster.others_waiting():
                    break
                time.sleep(LINGER_POLL_SECONDS)
                continue
            idle_since = None
            done, _ = wait(list(run.in_flight), timeout=0.5, return_when=FIRST_COMPLETED)
            answered = _settle(run, done)
            if not stop:
                _fill(run)  # the freed room goes back to work before the answers are written
            _record(run, answered)
    finally:
        # Whatever is still out (an exception above) is waited for and recorded.
        if run.in_flight:
            _record(run, _settle(run, wait(list(run.in_flight)).done))
        lanes = list(run.lanes)
        health.drain_release(lanes, run.holder)
        _commit_without_waiting(False)
    if not cluster.stopping():
        # Released, then looked again: work that arrived while we held the lease (whose
        # wake found it taken) is not left for the dispatcher.
        again = _with_due_work(lanes, now=timezone.now())
        if again:
            wake(again)
    return run.outcomes


def _commit_without_waiting(on: bool) -> None:
    """PostgreSQL: a drain's own commits (claims, results, leases) do not wait for the
    WAL to reach the disk (`synchronous_commit = off`): a crash of the database server
    itself may forget the last fraction of a second of them, which makes those
    deliveries due again and sends them again — at-least-once holds, and a worker that
    waited for an fsync per claim and per result could not keep up with one publish
    per transaction. The publisher's own transactions are untouched."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SET synchronous_commit TO off" if on else "SET synchronous_commit TO DEFAULT"
            )


def _renew(run: _Drain) -> None:
    now = timezone.now()
    fresh = health.drain_renew(list(run.lanes), run.holder, ttl=DRAIN_LEASE, now=now)
    configs = Endpoint.objects.in_bulk(list(fresh))
    for pk in list(run.lanes):
        lane = run.lanes[pk]
        if pk not in fresh or pk not in configs:
            # Lost (we stalled past the lease, or the endpoint was deleted): stop claiming
            # for it; what we have in flight is still recorded under our token.
            if not any(e == pk for e in run.in_flight.values()):
                del run.lanes[pk]
            continue
        lane.health, lane.endpoint = fresh[pk], configs[pk]  # support's edits apply
        lane.others = lifecycle.in_flight_count(pk, now=now, exclude_token=run.token)


def _submit(run: _Drain, deliveries: list[Delivery], lane: _Lane) -> None:
    now = timezone.now()
    for delivery in deliveries:
        delivery.endpoint = lane.endpoint
        future = _executor().submit(_send_one, delivery, build_request(delivery, now=now))
        run.in_flight[future] = lane.pk


def _fill(run: _Drain) -> None:
    """Claim and send what each lane may send now."""
    now = timezone.now()
    for lane in list(run.lanes.values()):
        claimed = run.claim(lane, now=now)
        if claimed:
            _submit(run, claimed, lane)


def _settle(run: _Drain, done: Iterable[Future]) -> list[Outcome]:
    """Take the answered requests off the window (their room is free again)."""
    batch = []
    for future in done:
        endpoint_id = run.in_flight.pop(future)
        outcome = future.result()
        lane = run.lanes.get(endpoint_id)
        if lane is not None and getattr(outcome.delivery, "counted", False):
            lane.mine -= 1
            lane.probing = False
        batch.append(outcome)
    return batch


def _record(run: _Drain, batch: list[Outcome]) -> None:
    """Write what came back; refresh the health of lanes whose state may have moved."""
    if not batch:
        return
    sent = [o for o in batch if o.result is not None]
    unsent = [o.delivery.pk for o in batch if o.result is None]
    if unsent:
        logger.warning("%d deliveries not sent: lease ran short", len(unsent))
        lifecycle.release(unsent, token=run.token, now=timezone.now())
    if sent:
        known = {pk: lane.health for pk, lane in run.lanes.items()}
        after = attempts_record(sent, token=run.token, known=known)
        run.outcomes.extend(sent)
        # The circuit may have opened or closed, the endpoint been switched off.
        changed = {o.delivery.endpoint_id for o in sent if not o.result.succeeded}
        changed |= set(after.recovered) | {pk for pk, _, _ in after.disable}
        for pk in changed & set(run.lanes):
            run.lanes[pk].health = health.of(pk)
            run.lanes[pk].endpoint.refresh_from_db(fields=["enabled"])


def attempts_record(
    outcomes: Sequence[Outcome], *, token: str, known: dict[int, EndpointHealth] | None = None
) -> health.Aftermath:
    """Write the attempt rows and move each delivery to its next state, atomically:
    one multi-row INSERT, one UPDATE per outcome kind, then the endpoints' health.

    A delivery whose lease is no longer ours (it expired and another worker took it)
    keeps its attempt row — the request did happen — but its state is not touched.
    """
    now = timezone.now()
    successes: dict[int, list[int]] = defaultdict(list)
    failures = []
    finished_ordered = set()  # ordered endpoints whose head is done: the next may go
    for outcome in outcomes:
        delivery = outcome.delivery
        if outcome.result.succeeded:
            successes[outcome.result.status_code].append(delivery.pk)
        else:
            failures.append(_failure(outcome, now=now))
        if delivery.endpoint.ordered and (outcome.result.succeeded or failures[-1][1] is None):
            finished_ordered.add(delivery.endpoint_id)
    try:
        with transaction.atomic():
            DeliveryAttempt.objects.bulk_create(
                [_attempt_row(outcome) for outcome in outcomes], batch_size=500
            )
            lifecycle.succeed(successes, token=token, now=now)
            dead = set(lifecycle.fail(failures, token=token, now=now))
            lifecycle.release_ordered(finished_ordered, now=now)
            # Health last: deliveries, then health rows, in every transaction.
            after = health.after_attempts(
                [
                    (o.delivery.endpoint_id, o.result.succeeded, o.result.status_code)
                    for o in outcomes
                    if o.delivery.next_trigger != Trigger.TEST
                ],
                now=now,
                known=known,
            )
    except DatabaseError:
        # E.g. the endpoint was deleted meanwhile. The leases expire; nothing is lost.
        logger.exception("could not record %d attempts", len(outcomes))
        return health.Aftermath()
    metrics.attempts_recorded(outcomes, dead=len(dead))  # [metrics] counters for /metrics
    for outcome in outcomes:
        if outcome.delivery.pk in dead and outcome.delivery.next_trigger != Trigger.TEST:
            notices.delivery_dead(outcome.delivery)
        _log(outcome)
    health.act_on(after, now=now)
    return after


def _failure(outcome: Outcome, *, now: datetime) -> tuple[int, datetime | None, int | None, str]:
    """(pk, next attempt or None for dead, status code, error) for a failed attempt."""
    delivery, result = outcome.delivery, outcome.result
    error = result.error_message or result.error_kind or ""
    if result.error_kind == "http_status" and result.body.strip():
        # What the receiver said is what support needs first: "HTTP 503: {"error": …}".
        error = f"{error}: {' '.join(result.body.split())[:300]}"
    if delivery.next_trigger == Trigger.TEST:
        delay = None  # a test event shows its result at once; it is not retried
    else:
        policy = RetryPolicy.from_dict(delivery.endpoint.retry_policy or None)
        delay = next_delay(policy, delivery.attempt_count + 1, result, now=now)
    return (delivery.pk, None if delay is None else now + delay, result.status_code, error[:500])


def _attempt_row(outcome: Outcome) -> DeliveryAttempt:
    delivery, request, result = outcome.delivery, outcome.request, outcome.result
    return DeliveryAttempt(
        delivery_id=delivery.pk,
        number=delivery.attempt_count + 1,
        trigger=delivery.next_trigger,
        triggered_by=delivery.next_trigger_by,
        started_at=outcome.started_at,
        duration_ms=result.duration_ms,
        request_url=request.url,
        request_headers=transport.mask_headers(
            request.headers, secret_names=request.secret_header_names
        ),
        response_status_code=result.status_code,
        response_headers=transport.mask_headers(result.headers),
        response_body=result.body,
        response_body_truncated=result.body_truncated,
        error_kind=result.error_kind or "",
        error_message=(result.error_message or "")[:500],
        succeeded=result.succeeded,
    )


def _log(outcome: Outcome) -> None:
    delivery, result = outcome.delivery, outcome.result
    logger.info(
        "delivery attempt %s",
        "succeeded" if result.succeeded else "failed",
        extra={
            "event_id": delivery.event.public_id,
            "delivery_id": delivery.public_id,
            "endpoint_id": delivery.endpoint.public_id,
            "attempt": delivery.attempt_count + 1,
            "outcome": "succeeded" if result.succeeded else (result.error_kind or "failed"),
            "status_code": result.status_code,
            "duration_ms": result.duration_ms,
        },
    )


def _with_due_work(endpoint_ids: Sequence[int], *, now: datetime) -> list[int]:
    """Of these endpoints, those with a delivery that may go now."""
    rows = Delivery.objects.filter(
        endpoint_id__in=list(endpoint_ids),
        status__in=("pending", "retrying"),
        next_attempt_at__lte=now,
    )
    open_ = rows.filter(endpoint__enabled=True).exclude(
        endpoint__health__circuit_state=CircuitState.OPEN,
        endpoint__health__circuit_retry_at__gt=now,
    )
    return sorted(
        set(open_.values_list("endpoint_id", flat=True).distinct())
        | set(rows.filter(next_trigger=Trigger.TEST).values_list("endpoint_id", flat=True))
    )


def deliver(ids: Iterable[int]) -> list[Outcome]:
    """Drain the endpoints of these deliveries now, in this process (tests and tools:
    what a worker does when woken for them)."""
    endpoint_ids = set(
        Delivery.objects.filter(pk__in=list(ids)).values_list("endpoint_id", flat=True)
    )
    return drain(sorted(endpoint_ids), linger=0)


def send_test(delivery: Delivery) -> list[Outcome]:
    """Send one test delivery from this process, past every gate and the drain lease
    (the command line's `send_test_event`)."""
    now = timezone.now()
    token = uuid.uuid4().hex
    endpoint = Endpoint.objects.get(pk=delivery.endpoint_id)
    leases = {endpoint.pk: lease_for(endpoint.timeout_seconds)}
    claimed = lifecycle.claim_ids([delivery.pk], token=token, lease_by_endpoint=leases, now=now)
    outcomes = []
    for row in claimed:
        row.endpoint = endpoint
        outcome = _send_one(row, build_request(row, now=now))
        if outcome.result is None:
            lifecycle.release([row.pk], token=token, now=timezone.now())
        else:
            attempts_record([outcome], token=token)
            outcomes.append(outcome)
    return outcomes
