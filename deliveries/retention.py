"""Retention: deleting old events with their deliveries and attempts (`prune_events`).

How long an event is kept depends on how its deliveries ended:

- **succeeded** — every delivery succeeded, or it had none: kept
  `WEBHOOKHUB_RETENTION_DAYS_SUCCEEDED` days;
- **failed** — at least one delivery is dead or cancelled: kept
  `WEBHOOKHUB_RETENTION_DAYS_FAILED` days (usually longer: support looks back on these);
- an event with a delivery still pending, retrying or in flight is never deleted.

A class whose setting is empty is not pruned. `--older-than DAYS` applies one age to both.

Batches of events (keyset by primary key), one transaction each, and only rows nobody
is delivering are locked: statuses are read without a lock, then the events to delete
and their deliveries are locked (SKIP LOCKED: a row someone holds keeps its event for
the next run, so a prune waits on nobody and cannot deadlock with a replay) and the
statuses checked again under the lock (a replay that made one pending meanwhile keeps
its event). Drains never wait on a prune: what they claim and record is waiting or in
flight, which a prune neither deletes nor locks.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from deliveries.lifecycle import skip_locked
from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus
from deliveries.selectors import UNFINISHED_STATUSES
from events.models import Event

Progress = Callable[[int], None] | None
FAILED_ENDINGS = (DeliveryStatus.DEAD, DeliveryStatus.CANCELLED)


@dataclass(frozen=True)
class Retention:
    """How long each class of finished event is kept (None: forever)."""

    succeeded: timedelta | None
    failed: timedelta | None

    @classmethod
    def from_settings(cls) -> "Retention":
        def days(name):
            value = str(getattr(settings, name, "") or "").strip()
            if not value:
                return None
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"{name} must be a whole number of days (≥ 1), not {value!r}")
            return timedelta(days=int(value))

        return cls(
            succeeded=days("WEBHOOKHUB_RETENTION_DAYS_SUCCEEDED"),
            failed=days("WEBHOOKHUB_RETENTION_DAYS_FAILED"),
        )

    @classmethod
    def uniform(cls, age: timedelta) -> "Retention":
        return cls(succeeded=age, failed=age)

    @property
    def configured(self) -> bool:
        return self.succeeded is not None or self.failed is not None


@dataclass
class PruneResult:
    events: int = 0
    deliveries: int = 0
    attempts: int = 0
    kept: int = 0  # past retention, kept: a delivery still unfinished (or in use right now)
    failed_kept: int = 0  # failed events old enough for the succeeded retention only

    def add(self, other: "PruneResult") -> None:
        for name in ("events", "deliveries", "attempts", "kept", "failed_kept"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def events_prune(
    *,
    older_than: timedelta | None = None,
    retention: Retention | None = None,
    dry_run: bool = False,
    batch_size: int = 500,
    now: datetime | None = None,
    progress: Progress = None,
) -> PruneResult:
    """Delete finished events past their retention with their deliveries and attempts.

    `older_than` applies one age to every finished event (as `prune_events
    --older-than`); otherwise `retention` (default: the settings). `dry_run` counts and
    deletes nothing. ValueError if no retention is given or configured."""
    if older_than is not None:
        retention = Retention.uniform(older_than)
    retention = retention or Retention.from_settings()
    if not retention.configured:
        raise ValueError("no retention given or configured")
    now = now or timezone.now()
    cutoffs = {
        "succeeded": now - retention.succeeded if retention.succeeded is not None else None,
        "failed": now - retention.failed if retention.failed is not None else None,
    }
    newest = max(cutoff for cutoff in cutoffs.values() if cutoff is not None)
    candidates = Event.objects.filter(created_at__lt=newest).order_by("pk")
    result, last_pk = PruneResult(), 0
    while True:
        rows = list(candidates.filter(pk__gt=last_pk).values_list("pk", "created_at")[:batch_size])
        if not rows:
            break
        last_pk = rows[-1][0]
        try:
            with transaction.atomic():
                result.add(_prune_batch(rows, cutoffs, dry_run=dry_run))
        except IntegrityError:
            # A replay created a delivery for one of these events meanwhile: keep them.
            result.add(PruneResult(kept=len(rows)))
        if progress:
            progress(len(rows))
    return result


def _doomed(rows, statuses, cutoffs, counts: PruneResult) -> list[int]:
    """The events of `rows` past their class's retention with every delivery finished."""
    by_event: dict[int, set[str]] = {}
    for event_id, status in statuses:
        by_event.setdefault(event_id, set()).add(status)
    doomed = []
    for pk, created_at in rows:
        seen = by_event.get(pk, set())
        if seen & set(UNFINISHED_STATUSES):
            counts.kept += 1
            continue
        failed = bool(seen & set(FAILED_ENDINGS))
        cutoff = cutoffs["failed" if failed else "succeeded"]
        if cutoff is not None and created_at < cutoff:
            doomed.append(pk)
        elif failed:
            counts.failed_kept += 1
    return doomed


def _prune_batch(rows, cutoffs, *, dry_run: bool) -> PruneResult:
    counts = PruneResult()
    ids = [pk for pk, _ in rows]
    read = list(Delivery.objects.filter(event_id__in=ids).values_list("pk", "event_id", "status"))
    doomed = _doomed(rows, [(event_id, status) for _, event_id, status in read], cutoffs, counts)
    if not doomed:
        return counts
    if dry_run:
        counts.events = len(doomed)
        counts.deliveries = Delivery.objects.filter(event_id__in=doomed).count()
        counts.attempts = DeliveryAttempt.objects.filter(delivery__event_id__in=doomed).count()
        return counts
    # Locked, events first (the order replay and erasure take too), skipping rows
    # someone else holds — a replay, a claim: such an event waits for the next run, and
    # the prune never waits on anyone. Then checked again under the lock: a replay since
    # the read above made a delivery pending (or added one) → its event stays.
    locked = set(skip_locked(Event.objects.filter(pk__in=doomed)).values_list("pk", flat=True))
    deliveries = list(
        skip_locked(Delivery.objects.filter(event_id__in=locked)).values_list(
            "pk", "event_id", "status"
        )
    )
    got = {pk for pk, _, _ in deliveries}
    again = {event_id for _, event_id, status in deliveries if status in UNFINISHED_STATUSES}
    again |= {event_id for pk, event_id, _ in read if event_id in locked and pk not in got}
    again |= set(doomed) - locked
    counts.kept += len(again)
    doomed = [pk for pk in doomed if pk not in again]
    delivery_ids = [pk for pk, event_id, _ in deliveries if event_id not in again]
    counts.events, counts.deliveries = len(doomed), len(delivery_ids)
    counts.attempts = _delete("deliveries_deliveryattempt", "delivery_id", delivery_ids)
    _delete("deliveries_delivery", "id", delivery_ids)
    _delete("events_event", "id", doomed)
    return counts


def _delete(table: str, column: str, ids: list[int]) -> int:
    """One DELETE by primary or foreign key: no deletion collector (which would load
    the rows and run a statement per relation for rows we know to be gone)."""
    if not ids:
        return 0
    with connection.cursor() as cursor:
        placeholders = ", ".join(["%s"] * len(ids))
        cursor.execute(f"DELETE FROM {table} WHERE {column} IN ({placeholders})", ids)  # noqa: S608
        return cursor.rowcount
