"""Waking the workers: the fast path on commit, and the dispatcher.

Fast path: `publish()` (and every "send now" action) hands the endpoints that have new
due deliveries to the workers when its transaction commits — one django-q2 task
`deliveries.tasks.drain([endpoint ids])` per commit (per few endpoints) — so a
healthy endpoint is called within milliseconds. A worker that runs it drains each
endpoint (`deliveries.engine`). An endpoint whose drain is running is not woken at
all: that drain picks the new rows up.

Dispatcher: everything the fast path did not wake — scheduled retries, a circuit's
probe time, work whose task was lost with a broker, leases of workers that died — is
found in the database. django-q2's scheduler looks at schedules only every 30 s and
has no per-task ETA, so the dispatcher is a loop task: it runs for `LOOP_SECONDS`,
ticking every `TICK_SECONDS`, then enqueues its own successor. One loop runs at a time
across all clusters (the "dispatcher" WorkerLease); a schedule every minute restarts
it if the chain ever breaks.
"""

import logging
import os
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from deliveries import cluster, lifecycle
from deliveries.models import (
    CircuitState,
    Delivery,
    DeliveryStatus,
    EndpointHealth,
    Trigger,
    WorkerLease,
)
from endpoints.models import verification_hold
from webhookhub import tracing

logger = logging.getLogger(__name__)

DRAIN_TASK = "deliveries.tasks.drain"
DISPATCH_TASK = "deliveries.tasks.dispatch_loop"
LOOP_SECONDS = 55.0
TICK_SECONDS = 0.5
DISPATCH_LIMIT = 500
# Renewed every tick: a loop that stops ticking (killed, stalled) loses it in seconds.
LEADER_LEASE = timedelta(seconds=3)
# A first attempt is the fast path's: the dispatcher wakes its endpoint only if it is
# still due this long after it was (its task was lost, or queued behind others).
FAST_PATH_GRACE = timedelta(seconds=1)


def _chunks(ids: Sequence[int], size: int):
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def _per_task(count: int) -> int:
    """Endpoints per drain task when `count` are woken at once: at least
    `WEBHOOKHUB_DRAIN_ENDPOINTS_PER_TASK`, and no more tasks than a cluster has workers
    to run them (each worker's thread pool sends for all the endpoints it drains)."""
    workers = max(1, int(settings.Q_CLUSTER.get("workers", 4)) - 1)  # one may dispatch
    return max(settings.WEBHOOKHUB_DRAIN_ENDPOINTS_PER_TASK, -(-count // workers))


def wake(endpoint_ids: Sequence[int]) -> int:
    """Queue drain tasks for these endpoints (a few endpoints per task, so several
    workers share a wide fan-out) in one write to the broker (one multi-row INSERT for
    the ORM broker, one RPUSH for Redis). Returns tasks queued.

    A failure to reach the broker is logged, not raised: the rows are in the database
    and the dispatcher will find them.
    """
    from django_q.brokers.orm import ORM
    from django_q.brokers.redis_broker import Redis

    ids = list(dict.fromkeys(endpoint_ids))
    chunks = list(_chunks(ids, _per_task(len(ids))))
    if not chunks:
        return 0
    try:
        broker, packages = _broker(), _packages(chunks)
        if isinstance(broker, ORM):
            _orm_rows(packages)
        elif isinstance(broker, Redis):
            broker.connection.rpush(broker.list_key, *packages)
        else:
            for package in packages:
                broker.enqueue(package)
    except Exception:
        logger.exception("could not wake %d endpoints; the dispatcher will", len(endpoint_ids))
        return 0
    return len(chunks)


_brokers: dict[int, object] = {}


def _broker():
    """This process's django-q2 broker: one Redis connection pool kept for every hand-off
    instead of a new connection each time (rebuilt in a forked child)."""
    from django_q.brokers import get_broker

    pid = os.getpid()
    if pid not in _brokers:
        _brokers.clear()
        _brokers[pid] = get_broker()
    return _brokers[pid]


class _Collector:
    """Stands in for the django-q2 broker while `async_task` packs a task: keeps the
    package instead of sending it."""

    def __init__(self, broker) -> None:
        self.list_key = broker.list_key
        self.packages: list[str] = []

    def enqueue(self, package: str) -> int:
        self.packages.append(package)
        return len(self.packages)


def _packages(chunks: list[list[int]]) -> list[str]:
    """django-q2's signed task packages: one drain task per chunk of endpoint ids."""
    from django_q.tasks import async_task

    collector = _Collector(_broker())
    for chunk in chunks:
        async_task(DRAIN_TASK, chunk, save=False, task_name="drain", broker=collector)
    return collector.packages


def _orm_rows(packages: list[str]) -> list:
    """The ORM broker's queue rows for these packages, in one INSERT."""
    from django_q.conf import Conf
    from django_q.models import OrmQ

    now, key = timezone.now(), _broker().list_key or Conf.CLUSTER_NAME
    return OrmQ.objects.using(Conf.ORM).bulk_create(
        [OrmQ(key=key, payload=package, lock=now) for package in packages]
    )


def not_draining(endpoint_ids: Sequence[int]) -> list[int]:
    """Of these endpoints, those nobody is draining now (one indexed read, no lock).

    A drain that is running picks up whatever is committed before it lets go: it
    releases its lease and then looks once more (`engine.drain`). So a commit that
    sees the lease held can skip the wake-up — a burst to one endpoint then costs one
    task, not one per publish."""
    if not endpoint_ids:
        return []
    busy = set(
        EndpointHealth.objects.filter(pk__in=list(endpoint_ids), drain_until__gt=timezone.now())
        .exclude(drain_holder="")
        .values_list("pk", flat=True)
    )
    return [pk for pk in endpoint_ids if pk not in busy]


class _CommitBatch:
    """The endpoints one transaction wakes when it commits."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.trace = tracing.current()  # the publish's: the hand-off is its child

    def add(self, ids: Sequence[int]) -> None:
        self.ids.extend(i for i in ids if i not in self.ids)

    def __call__(self) -> None:
        started = tracing.clock()
        try:
            ids = not_draining(self.ids)
        except Exception:  # the database hiccuped after the commit: wake them all
            logger.exception("could not read drain leases; waking %d endpoints", len(self.ids))
            ids = self.ids
        tasks = wake(ids)
        tracing.handed_off(self.trace, started, endpoints=len(ids), tasks=tasks)


def wake_on_commit(endpoint_ids: Sequence[int]) -> None:
    """Wake the workers for these endpoints when the current transaction commits
    (nothing if it rolls back), unless their drain is running.

    Every publish in one transaction joins one batch, so 20 publishes in a request
    become one task, not 20. A crash between the commit and the hand-off loses no
    delivery: the rows are in the database and the dispatcher wakes their endpoints
    (`FAST_PATH_GRACE`). (If the savepoint that registered the batch rolls back, Django
    drops it; a later publish starts anew.)
    """
    if not endpoint_ids:
        return
    conn = transaction.get_connection()
    if not conn.in_atomic_block:
        batch = _CommitBatch()
        batch.add(endpoint_ids)
        batch()
        return
    for _savepoints, callback, _robust in conn.run_on_commit:
        if isinstance(callback, _CommitBatch):
            callback.add(endpoint_ids)
            return
    batch = _CommitBatch()
    batch.add(endpoint_ids)
    transaction.on_commit(batch, robust=True)


def endpoints_to_wake(
    now: datetime, *, limit: int = DISPATCH_LIMIT, skip: Sequence[int] = ()
) -> list[tuple]:
    """Endpoints nobody is draining that have a delivery that may go now: a due retry,
    a first attempt the fast path has not taken within its grace, a test; the circuit
    closed or its probe due; the endpoint on. One index probe per endpoint. Returns
    (endpoint id, when its last drain ended)."""
    rows = Delivery.objects.filter(endpoint_id=OuterRef("pk"))
    retry_due = rows.filter(status=DeliveryStatus.RETRYING, next_attempt_at__lte=now)
    first_due = rows.filter(
        status=DeliveryStatus.PENDING, next_attempt_at__lte=now - FAST_PATH_GRACE
    )
    test_due = first_due.filter(next_trigger=Trigger.TEST)
    gate_open = Q(endpoint__enabled=True) & (
        Q(circuit_state=CircuitState.CLOSED) | Q(circuit_retry_at__lte=now)
    )
    if (held := verification_hold("endpoint__")) is not None:
        gate_open &= ~held  # awaiting verification: only its challenge (a test) goes
    free = Q(drain_until__isnull=True) | Q(drain_until__lt=now)
    return list(
        EndpointHealth.objects.filter(free)
        .exclude(pk__in=list(skip))
        .filter((gate_open & (Exists(retry_due) | Exists(first_due))) | Exists(test_due))
        .order_by("pk")
        .values_list("pk", "drain_until")[:limit]
    )


class Dispatcher:
    """One tick: reclaim expired leases, wake the endpoints with due work. Remembers
    what it woke so that an endpoint whose drain task is still queued is not woken
    again every tick: again only once a drain has run since, or after the reservation
    (`WEBHOOKHUB_DISPATCH_RESERVATION_SECONDS`: the task was lost)."""

    def __init__(self) -> None:
        self.woken: dict[int, datetime] = {}

    def tick(self, *, now: datetime | None = None) -> int:
        now = now or timezone.now()
        reclaimed = lifecycle.reclaim_expired(now=now)  # due now: wake their endpoints
        stale = now - reservation()
        self.woken = {pk: at for pk, at in self.woken.items() if at > stale}
        if self.woken:
            # Forget the endpoints whose drain ran since we woke them; the others (their
            # task still queued) are left out of the scan, so they cannot crowd it.
            drained = EndpointHealth.objects.filter(pk__in=list(self.woken)).values_list(
                "pk", "drain_until"
            )
            for pk, drained_at in drained:
                if drained_at is not None and drained_at > self.woken[pk]:
                    del self.woken[pk]
        due = [pk for pk, _ in endpoints_to_wake(now, skip=list(self.woken))]
        due += [pk for pk in reclaimed if pk not in due]
        if not due:
            return 0
        wake(due)
        self.woken.update(dict.fromkeys(due, now))
        return len(due)


def dispatch_due(*, now: datetime | None = None) -> int:
    """One dispatcher tick without memory (tests, tools): returns endpoints woken."""
    return Dispatcher().tick(now=now)


def reservation() -> timedelta:
    """How long the dispatcher waits for a drain it asked for before asking again (the
    task was lost: broker flushed, enqueue failed, worker killed)."""
    return timedelta(seconds=settings.WEBHOOKHUB_DISPATCH_RESERVATION_SECONDS)


def lease_acquire(name: str, holder: str, *, ttl: timedelta, now: datetime | None = None) -> bool:
    """Take or renew the named lease for `holder`; False if someone else holds it."""
    now = now or timezone.now()
    WorkerLease.objects.get_or_create(
        name=name, defaults={"holder": "", "expires_at": now - timedelta(seconds=1)}
    )
    taken = (
        WorkerLease.objects.filter(name=name, expires_at__lt=now)
        | WorkerLease.objects.filter(name=name, holder=holder)
    ).update(holder=holder, expires_at=now + ttl, heartbeat_at=now)
    return bool(taken)


def lease_release(name: str, holder: str) -> None:
    WorkerLease.objects.filter(name=name, holder=holder).update(expires_at=timezone.now())


def dispatch_loop(
    *, seconds: float = LOOP_SECONDS, tick: float = TICK_SECONDS, chain: bool = True
) -> int:
    """Run the dispatcher for `seconds` if no other loop is running (and the cluster is
    not stopping); return how many endpoints it woke."""
    holder = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    if not lease_acquire("dispatcher", holder, ttl=LEADER_LEASE):
        return 0
    dispatched, dispatcher = 0, Dispatcher()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and not cluster.stopping():
            started = time.monotonic()
            if not lease_acquire("dispatcher", holder, ttl=LEADER_LEASE):
                return dispatched  # another loop took over (we stalled past the lease)
            try:
                dispatched += dispatcher.tick()
            except Exception:
                logger.exception("dispatcher tick failed")
            time.sleep(max(0.0, tick - (time.monotonic() - started)))
    finally:
        lease_release("dispatcher", holder)
        if chain:
            # Also when stopping: the broker is shared; another cluster (or this one,
            # restarted) runs the successor at once instead of after the schedule.
            _enqueue_loop()
    return dispatched


def _enqueue_loop() -> None:
    from django_q.tasks import async_task

    try:
        async_task(DISPATCH_TASK, save=False, task_name="dispatcher")
    except Exception:
        logger.exception("could not enqueue the next dispatcher loop; the schedule will restart it")


def dispatcher_running(now: datetime | None = None) -> bool:
    now = now or timezone.now()
    return WorkerLease.objects.filter(name="dispatcher", expires_at__gte=now).exists()
