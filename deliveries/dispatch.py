"""Handing deliveries to django-q2 workers: the fast path and the dispatcher.

Fast path: `publish()` (and every "send now" action) enqueues the new delivery ids when
its transaction commits, so a healthy endpoint is called within milliseconds.

Dispatcher: everything the fast path did not do — scheduled retries, deliveries whose
task was lost with a broker, leases of workers that died — is found in the database.
django-q2's scheduler looks at schedules only every 30 s and has no per-task ETA, so
the dispatcher is a loop task: it runs for `LOOP_SECONDS`, polling due rows every
`TICK_SECONDS`, then enqueues its own successor. One loop runs at a time across all
clusters (the "dispatcher" WorkerLease); a schedule every minute restarts it if the
chain ever breaks. Rows are taken with SELECT … FOR UPDATE SKIP LOCKED over the
partial indexes, so even two loops at once would not hand out the same row twice.
"""

import logging
import os
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Q, QuerySet, Value, When
from django.utils import timezone

from deliveries.models import Delivery, DeliveryStatus, Trigger, WorkerLease

logger = logging.getLogger(__name__)

DELIVER_TASK = "deliveries.tasks.deliver"
DISPATCH_TASK = "deliveries.tasks.dispatch_loop"
LOOP_SECONDS = 55.0
TICK_SECONDS = 0.5
DISPATCH_LIMIT = 2000
# Renewed every tick: a loop that stops ticking (killed, stalled) loses it in seconds.
LEADER_LEASE = timedelta(seconds=3)
LOST_TEST_ERROR = (
    "The worker stopped while sending this test; it is not sent again. Send a new test."
)


def _chunks(ids: Sequence[int], size: int):
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def enqueue(ids: Sequence[int], *, token: str | None = None) -> int:
    """Queue delivery tasks for `ids`, one task per batch, in one write to the broker
    (one multi-row INSERT for the ORM broker, one RPUSH for Redis). Returns tasks queued.

    A failure to reach the broker is logged, not raised: the rows are in the database
    and the dispatcher will find them.
    """
    from django_q.brokers.orm import ORM
    from django_q.brokers.redis_broker import Redis

    chunks = list(_chunks(list(ids), settings.WEBHOOKHUB_DELIVERY_BATCH_SIZE))
    if not chunks:
        return 0
    try:
        broker, packages = _broker(), _packages(chunks, token=token)
        if isinstance(broker, ORM):
            _orm_rows(packages)
        elif isinstance(broker, Redis):
            broker.connection.rpush(broker.list_key, *packages)
        else:
            for package in packages:
                broker.enqueue(package)
    except Exception:
        logger.exception("could not enqueue %d deliveries; the dispatcher will retry", len(ids))
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


def _packages(chunks: list[list[int]], *, token: str | None = None) -> list[str]:
    """django-q2's signed task packages for these batches of delivery ids."""
    from django_q.tasks import async_task

    collector = _Collector(_broker())
    for chunk in chunks:
        async_task(
            DELIVER_TASK, chunk, token=token, save=False, task_name="deliver", broker=collector
        )
    return collector.packages


def _orm_rows(packages: list[str]) -> list:
    """The ORM broker's queue rows for these packages, in one INSERT."""
    from django_q.conf import Conf
    from django_q.models import OrmQ

    now, key = timezone.now(), _broker().list_key or Conf.CLUSTER_NAME
    return OrmQ.objects.using(Conf.ORM).bulk_create(
        [OrmQ(key=key, payload=package, lock=now) for package in packages]
    )


class _CommitBatch:
    """The delivery ids one transaction hands over when it commits."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def add(self, ids: Sequence[int]) -> None:
        self.ids.extend(ids)

    def __call__(self) -> None:
        enqueue(self.ids)


class _OutboxBatch:
    """ORM broker in the same database: the task rows are written in the publishing
    transaction itself (an outbox), so workers see them exactly when it commits, there
    is no second commit per publish, and no crash between commit and hand-off can
    lose them. Later publishes of the transaction fill the last task up to the batch
    size (an UPDATE of its row) before adding rows."""

    def __init__(self) -> None:
        self.tasks: list[tuple[int, list[int]]] = []  # (django_q_ormq id, delivery ids)

    def add(self, ids: Sequence[int]) -> None:
        from django_q.models import OrmQ

        ids, size = list(ids), settings.WEBHOOKHUB_DELIVERY_BATCH_SIZE
        last = self.tasks[-1] if self.tasks and len(self.tasks[-1][1]) < size else None
        topped = last[1] + ids[: size - len(last[1])] if last else []
        chunks = list(_chunks(ids[size - len(last[1]) :] if last else ids, size))
        try:  # packed before any SQL: a failure here leaves the transaction untouched
            packages = _packages(([topped] if last else []) + chunks)
        except Exception:
            logger.exception("could not pack %d deliveries; the dispatcher sends them", len(ids))
            return
        if last:
            OrmQ.objects.filter(pk=last[0]).update(payload=packages.pop(0))
            last[1][:] = topped
        if chunks:
            rows = _orm_rows(packages)
            self.tasks += [(row.pk, chunk) for row, chunk in zip(rows, chunks, strict=True)]

    def __call__(self) -> None:
        pass  # committed with the transaction: nothing left to hand over


def _outbox_possible(conn) -> bool:
    from django_q.brokers.orm import ORM
    from django_q.conf import Conf

    return isinstance(_broker(), ORM) and conn.alias == Conf.ORM and not Conf.SYNC


def enqueue_on_commit(ids: Sequence[int]) -> None:
    """Hand `ids` to the workers when the current transaction commits (nothing if it
    rolls back).

    Every publish in one transaction joins one batch, so 20 publishes in a request
    become one task of 20 deliveries, not 20 tasks. With the ORM broker the task rows
    are written in the transaction itself (`_OutboxBatch`); with Redis they are pushed
    after the commit. (If the savepoint that registered the batch rolls back, Django
    drops it — and the database its rows; a later publish starts anew.)
    """
    if not ids:
        return
    conn = transaction.get_connection()
    if not conn.in_atomic_block:
        enqueue(ids)
        return
    for _savepoints, callback, _robust in conn.run_on_commit:
        if isinstance(callback, _CommitBatch | _OutboxBatch):
            callback.add(ids)
            return
    batch = _OutboxBatch() if _outbox_possible(conn) else _CommitBatch()
    batch.add(ids)
    transaction.on_commit(batch, robust=True)


def dispatchable(now: datetime) -> dict[str, QuerySet]:
    """What the dispatcher hands to the workers now, by reason, each ordered for a range
    scan over a partial index (`delivery_due`, `delivery_lease`).

    Rows the fast path handed over (or a previous tick reserved) carry `claimed_until`
    in the future and are left alone until it passes: a first attempt whose task was
    lost with the broker is picked up then.
    """
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    waiting = Delivery.objects.filter(free, next_attempt_at__lte=now).order_by("next_attempt_at")
    return {
        "due_retries": waiting.filter(status=DeliveryStatus.RETRYING),
        "lost_first_attempts": waiting.filter(status=DeliveryStatus.PENDING),
        "expired_leases": Delivery.objects.filter(
            status=DeliveryStatus.IN_FLIGHT, claimed_until__lt=now
        )
        .exclude(next_trigger=Trigger.TEST)
        .order_by("claimed_until"),
    }


def expired_tests_bury(*, now: datetime) -> int:
    """A test whose worker died mid-request may have reached the receiver: it is marked
    dead, never sent again (a test is sent at most once and never retried)."""
    return Delivery.objects.filter(
        status=DeliveryStatus.IN_FLIGHT, claimed_until__lt=now, next_trigger=Trigger.TEST
    ).update(
        status=DeliveryStatus.DEAD,
        next_attempt_at=None,
        claimed_until=None,
        lease_token="",
        completed_at=now,
        last_error=LOST_TEST_ERROR,
        updated_at=now,
    )


def dispatch_due(*, now: datetime | None = None, limit: int = DISPATCH_LIMIT) -> int:
    """Reserve and enqueue due deliveries and expired leases; return how many.

    A reservation keeps the row waiting but marks it taken (`claimed_until`, our token)
    so the next tick does not hand it out again; the task claims it with that token.
    """
    now = now or timezone.now()
    token = uuid.uuid4().hex
    queries = dispatchable(now)
    expired_tests_bury(now=now)
    with transaction.atomic():
        ids = _lock_ids(queries["due_retries"], limit)
        ids += _lock_ids(queries["lost_first_attempts"], limit - len(ids))
        expired = _lock_ids(queries["expired_leases"], limit - len(ids))
        ids += expired
        if not ids:
            return 0
        # A worker died holding these: back to waiting (the attempt count is untouched,
        # the receiver may have got it: at-least-once).
        Delivery.objects.filter(pk__in=expired).update(
            status=Case(
                When(attempt_count=0, then=Value(DeliveryStatus.PENDING)),
                default=Value(DeliveryStatus.RETRYING),
            ),
            next_attempt_at=now,
        )
        Delivery.objects.filter(pk__in=ids).update(
            lease_token=token, claimed_until=now + reservation()
        )
    enqueue(ids, token=token)
    return len(ids)


def reservation() -> timedelta:
    """How long a handed-over delivery is left to its task before the dispatcher takes
    it back (the task was lost: broker flushed, enqueue failed, worker killed)."""
    return timedelta(seconds=settings.WEBHOOKHUB_DISPATCH_RESERVATION_SECONDS)


def _lock_ids(queryset, limit: int) -> list[int]:
    if limit <= 0:
        return []
    if connection.features.has_select_for_update_skip_locked:
        queryset = queryset.select_for_update(skip_locked=True, of=("self",))
    return list(queryset.values_list("pk", flat=True)[:limit])


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
    """Run the dispatcher for `seconds` if no other loop is running; return rows dispatched."""
    holder = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    if not lease_acquire("dispatcher", holder, ttl=LEADER_LEASE):
        return 0
    dispatched = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            started = time.monotonic()
            if not lease_acquire("dispatcher", holder, ttl=LEADER_LEASE):
                return dispatched  # another loop took over (we stalled past the lease)
            try:
                dispatched += dispatch_due()
            except Exception:
                logger.exception("dispatcher tick failed")
            time.sleep(max(0.0, tick - (time.monotonic() - started)))
    finally:
        lease_release("dispatcher", holder)
        if chain:
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
