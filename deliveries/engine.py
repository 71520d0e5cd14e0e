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
`deliveries.admission`; writing what came back is `deliveries.recording`; each status
change is `deliveries.lifecycle`; circuit and streak are `deliveries.health`. The lease on each
delivery outlasts the endpoint's timeout and a request starts only if it fits in what
is left of it, so a slow request is never handed to a second worker, and a worker that
dies leaves leases that expire and make the rows due again.
"""

import logging
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from deliveries import cluster, health, lifecycle, signing, transport, wakeups
from deliveries.admission import (
    Lane,
    admit,
    connect_timeout_for,
    fits_in_lease,
    lease_for,
    load_lanes,
)
from deliveries.dispatch import wake
from deliveries.models import CircuitState, Delivery, Trigger, due_q
from deliveries.recording import Outcome, attempts_record
from endpoints.models import Endpoint, verification_hold
from webhookhub import tracing

logger = logging.getLogger(__name__)

DRAIN_LEASE = timedelta(seconds=10)  # renewed every RENEW_SECONDS while draining
RENEW_SECONDS = 1.0
LINGER_POLL_SECONDS = 0.01
# Successful answers are written together: when this many are waiting, when the oldest
# has waited this long, or when nothing else is in flight. A failure, an ordered
# endpoint's answer, a probe's or a test's is written at once (what happens next
# depends on it).
RECORD_BATCH = 100
RECORD_WAIT_SECONDS = 0.05

__all__ = ["attempts_record", "deliver", "drain", "lease_for", "send_test"]


def build_request(delivery: Delivery, *, now: datetime) -> transport.OutboundRequest:
    """The signed request for this delivery's next attempt: same body every time."""
    endpoint = delivery.endpoint
    body = delivery.event.body.encode()
    secrets, secret_keys = endpoint.signing_credentials(now)
    signed = signing.webhook_headers(
        msg_id=delivery.event.public_id,
        timestamp=int(now.timestamp()),
        body=body,
        secrets=secrets,
        secret_keys=secret_keys,
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
    if not fits_in_lease(delivery, request.timeout, at=started_at):
        return Outcome(delivery, request, None, started_at)
    span, request = tracing.attempt_started(delivery, request)  # + traceparent if asked
    result = transport.send(request)
    tracing.attempt_ended(span, result)
    return Outcome(delivery, request, result, started_at, span)


# --- one endpoint being drained --------------------------------------------------------


@dataclass
class _Drain:
    holder: str
    token: str
    lanes: dict[int, Lane] = field(default_factory=dict)
    in_flight: dict[Future, int] = field(default_factory=dict)  # future → endpoint id
    outcomes: list[Outcome] = field(default_factory=list)
    unrecorded: list[Outcome] = field(default_factory=list)  # answered, not yet written
    unrecorded_since: float = 0.0  # monotonic time of the oldest of them
    listening: bool = False  # PostgreSQL: new work is heard of (`deliveries.wakeups`)


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
    started = time.monotonic()
    renew_at = started + RENEW_SECONDS
    idle_since = None
    try:
        run.lanes = load_lanes(held, token=run.token, now=now)
        _commit_without_waiting(True)
        run.listening = wakeups.listen()
        while True:
            clock = time.monotonic()
            if clock >= renew_at:
                _renew(run)
                renew_at = clock + RENEW_SECONDS
            stop = cluster.stopping() or clock - started >= budget or not run.lanes
            if not stop:
                _hear(run, timeout=0)
                _fill(run)
            if not run.in_flight:
                if stop:
                    break
                _record_soon(run, [], flush=False)  # answers written at most so late
                if any(not lane.dry for lane in run.lanes.values()):
                    # Only a rate limit keeps a lane from dry: sleep until its next token.
                    waits = [w for lane in run.lanes.values() if (w := lane.rate_wait_until)]
                    pause = min(waits, default=clock + LINGER_POLL_SECONDS) - time.monotonic()
                    time.sleep(min(max(pause, LINGER_POLL_SECONDS), 0.25))
                    continue
                # Nothing due: linger a moment for more if nobody else needs the worker.
                idle_since = idle_since or clock
                if clock - idle_since >= linger or cluster.others_waiting():
                    break
                if run.listening:
                    pause = min(wakeups.SAFETY_SECONDS, idle_since + linger - clock)
                    if run.unrecorded:
                        pause = min(pause, run.unrecorded_since + RECORD_WAIT_SECONDS - clock)
                    _hear(run, timeout=pause)
                else:
                    time.sleep(LINGER_POLL_SECONDS)
                continue
            idle_since = None
            # Listening, new work is heard of between answers too (a slow endpoint).
            timeout = 0.02 if run.listening else 0.5
            if run.unrecorded:
                timeout = min(timeout, run.unrecorded_since + RECORD_WAIT_SECONDS - clock)
            timeout = max(0.0, timeout)
            done, _ = wait(list(run.in_flight), timeout=timeout, return_when=FIRST_COMPLETED)
            answered = _settle(run, done)
            try:
                if not stop:
                    # The freed room goes back to work before the answers are written —
                    # except where an answer failed (the circuit or a 410 may stop it).
                    failing = {o.delivery.endpoint_id for o in answered if not _ok(o)}
                    _fill(run, skip=failing)
            finally:
                _record_soon(run, answered, flush=stop)
    finally:
        _finish(run, held)
    # Released, then looked again: work that arrived while we held the lease (whose
    # wake found it taken) is not left for the dispatcher. Also when the cluster is
    # stopping: the broker is shared, another cluster (or this one, restarted) takes it.
    again = _with_due_work(held, now=timezone.now())
    if again:
        wake(again)
    return run.outcomes


def _finish(run: _Drain, held: list[int]) -> None:
    """Whatever is still out (an exception in the loop) is waited for and recorded; then
    what was claimed ahead is given back, the drain lease released, the connection's
    LISTEN and commit mode reset — each step even if one before it raised (the worker's
    connection outlives the drain, and its unread notifications would pile up)."""
    try:
        try:
            if run.in_flight:
                run.unrecorded += _settle(run, wait(list(run.in_flight)).done)
        finally:
            _record(run, run.unrecorded)
    finally:
        try:
            ahead = [pk for lane in run.lanes.values() for pk in lane.give_back()]
            lifecycle.release(ahead, token=run.token, now=timezone.now())
        finally:
            try:
                health.drain_release(held, run.holder)
            finally:
                if run.listening:
                    wakeups.unlisten()
                _commit_without_waiting(False)


def _ok(outcome: Outcome) -> bool:
    return outcome.result is not None and outcome.result.succeeded


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
        if lane.lost or pk not in fresh or pk not in configs:
            # Lost (we stalled past the lease, or the endpoint was deleted): claim nothing
            # more for it; what is in flight is still recorded under our token, then the
            # lane goes.
            lane.lost = True
            lifecycle.release(lane.give_back(), token=run.token, now=now)
            if not any(e == pk for e in run.in_flight.values()):
                del run.lanes[pk]
            continue
        lane.health, lane.endpoint = fresh[pk], configs[pk]  # support's edits apply
        lane.others = lifecycle.in_flight_count(pk, now=now, exclude_token=run.token)


def _submit(run: _Drain, deliveries: list[Delivery], lane: Lane) -> None:
    now = timezone.now()
    for n, delivery in enumerate(deliveries):
        delivery.endpoint = lane.endpoint
        try:
            request = build_request(delivery, now=now)
        except Exception:
            # E.g. a secret that no key decrypts: give these back and leave the endpoint
            # alone for this drain (the dispatcher wakes it again; the log says why).
            logger.exception("could not build the request of %s", delivery.public_id)
            rest = deliveries[n:]
            lifecycle.release([d.pk for d in rest], token=run.token, now=now)
            lane.mine -= sum(1 for d in rest if getattr(d, "counted", False))
            lifecycle.release(lane.give_back(), token=run.token, now=now)
            lane.lost = True
            return
        run.in_flight[_executor().submit(_send_one, delivery, request)] = lane.pk


def _fill(run: _Drain, *, skip: frozenset | set = frozenset()) -> None:
    """Claim and send what each lane may send now. A lane that had nothing due is asked
    again only after a pause that grows with the number of lanes (10 ms for one, at most
    0.25 s), so a drain of many endpoints does not run a claim per idle endpoint per
    answer: about 100 idle claims a second per drain, whatever its size."""
    now, clock = timezone.now(), time.monotonic()
    dry_pause = min(0.25, LINGER_POLL_SECONDS * len(run.lanes))
    if run.listening:  # a lane with new work is heard of; the rest is a safety net
        dry_pause = max(dry_pause, wakeups.SAFETY_SECONDS)
    for lane in list(run.lanes.values()):
        if lane.lost or lane.pk in skip:
            continue
        if lane.dry and clock - lane.asked_at < dry_pause:
            continue
        lane.asked_at = clock
        started = tracing.clock()
        claimed = admit(lane, token=run.token, now=now)
        if claimed:
            tracing.claimed(lane.endpoint, claimed, started)
            _submit(run, claimed, lane)


def _hear(run: _Drain, *, timeout: float) -> None:
    """Lanes whose endpoint got new deliveries are asked again at once."""
    if run.listening:
        for pk in wakeups.heard(timeout=max(0.0, timeout)):
            if pk in run.lanes:
                run.lanes[pk].dry = False


def _settle(run: _Drain, done: Iterable[Future]) -> list[Outcome]:
    """Take the answered requests off the window (their room is free again)."""
    batch = []
    for future in done:
        endpoint_id = run.in_flight.pop(future)
        outcome = future.result()
        lane = run.lanes.get(endpoint_id)
        if lane is not None and getattr(outcome.delivery, "counted", False):
            if lane.mine + lane.others >= lane.endpoint.max_in_flight:
                lane.dry = False  # it was full and has room again: ask it at once
            lane.mine -= 1
            lane.probing = False
        batch.append(outcome)
    return batch


def _record_soon(run: _Drain, answered: list[Outcome], *, flush: bool) -> None:
    """Write these answers now if one of them decides what happens next, or together
    with the next ones (fewer, larger transactions) — at most RECORD_WAIT_SECONDS later."""
    if answered and not run.unrecorded:
        run.unrecorded_since = time.monotonic()
    run.unrecorded += answered
    if not run.unrecorded:
        return
    urgent = any(
        not _ok(o)
        or o.delivery.endpoint.ordered
        or o.delivery.next_trigger == Trigger.TEST
        or o.delivery.endpoint_id not in run.lanes
        or run.lanes[o.delivery.endpoint_id].health.circuit_state != CircuitState.CLOSED
        for o in answered
    )
    if (
        flush
        or urgent
        or len(run.unrecorded) >= RECORD_BATCH
        or time.monotonic() - run.unrecorded_since >= RECORD_WAIT_SECONDS
    ):
        batch, run.unrecorded = run.unrecorded, []
        _record(run, batch)


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
        changed |= {o.delivery.endpoint_id for o in sent if getattr(o, "challenge", None)}
        for pk in changed & set(run.lanes):
            run.lanes[pk].health = health.of(pk)
            run.lanes[pk].endpoint.refresh_from_db(
                fields=["enabled", "verified_at", "verification_sent_at"]
            )
            # Its state moved (a probe closed the circuit): ask it again at once, not
            # after the dry pause — the backlog behind the probe goes in this drain.
            run.lanes[pk].dry = False


def _with_due_work(endpoint_ids: Sequence[int], *, now: datetime) -> list[int]:
    """Of these endpoints, those with a delivery that may go now."""
    rows = Delivery.objects.filter(due_q(now), endpoint_id__in=list(endpoint_ids))
    open_ = rows.filter(endpoint__enabled=True).exclude(
        endpoint__health__circuit_state=CircuitState.OPEN,
        endpoint__health__circuit_retry_at__gt=now,
    )
    if (held := verification_hold("endpoint__")) is not None:
        open_ = open_.exclude(held)  # until it answers its challenge (a test, below)
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
