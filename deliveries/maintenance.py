"""Bulk upkeep behind the cron commands: replay, recover stuck deliveries. (Pruning is
`deliveries.retention`, erasing payloads `deliveries.erasure`.)

Each works in batches (keyset pagination by primary key, one transaction per batch, so
no table is ever loaded into memory), reports each batch through an optional
`progress(n)` callback, and is safe to run while another run of itself, the dispatcher
and the workers are busy:

- a replay locks its batch with SELECT … FOR UPDATE SKIP LOCKED (PostgreSQL) and
  re-checks the status under the lock, so two overlapping runs never queue the same
  delivery twice, and a delivery that is pending or in flight is never re-sent;
- recovery is the dispatcher's own work (expired leases reclaimed under SKIP LOCKED,
  endpoints with due work woken).
"""

from collections.abc import Callable
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.models import Action
from deliveries import lifecycle
from deliveries.dispatch import endpoints_to_wake, wake
from deliveries.models import Delivery
from deliveries.selectors import REPLAYABLE_STATUSES, stuck_deliveries
from deliveries.services import audit_per_endpoint, event_replay

Progress = Callable[[int], None] | None


def deliveries_replay(
    queryset: QuerySet,
    *,
    by: str,
    limit: int | None = None,
    batch_size: int = 200,
    progress: Progress = None,
) -> int:
    """Replay each delivery of `queryset` that is dead, retrying, cancelled or succeeded.

    Every one becomes a new attempt on the same delivery (trigger `replay`, same
    webhook-id) through `event_replay`, queued when its batch commits. Returns how many
    were queued. `progress` is called once per batch, inside its transaction.
    """
    # Erased events are never sent again (deliveries.erasure): not candidates at all.
    queryset = queryset.filter(
        status__in=REPLAYABLE_STATUSES, event__expunged_at__isnull=True
    ).order_by("pk")
    done, last_pk = 0, 0
    while limit is None or done < limit:
        size = batch_size if limit is None else min(batch_size, limit - done)
        with transaction.atomic():
            ids = lifecycle.locked_ids(queryset.filter(pk__gt=last_pk), size)
            if not ids:
                break
            last_pk = ids[-1]
            rows = (
                Delivery.objects.filter(pk__in=ids)
                .select_related("event", "endpoint")
                .only("event__partner_id", "endpoint__partner_id")
                .order_by("pk")
            )
            replayed = []
            for delivery in rows:
                try:
                    queued = event_replay(
                        delivery.event, endpoint=delivery.endpoint, by=by, audit=False
                    )
                except ValidationError:  # its payload was erased since the batch was read
                    continue
                if queued:
                    replayed.append((delivery.pk, delivery.endpoint_id))
            done += len(replayed)
            audit_per_endpoint(Action.REPLAYED, replayed, by=by)
            if progress:
                progress(len(ids))
    return done


def stuck_counts(now: datetime | None = None) -> dict[str, int]:
    """How many deliveries `deliveries_recover_stuck` would hand over now, by reason."""
    now = now or timezone.now()
    return {reason: rows.count() for reason, rows in stuck_deliveries(now).items()}


def deliveries_recover_stuck(*, progress: Progress = None) -> int:
    """Hand every stuck delivery to the workers again; returns how many.

    Stuck: due retries and first attempts nobody picked up (the broker lost the task)
    and in-flight deliveries whose lease expired (the worker died): the leases are
    reclaimed and every endpoint with due work nobody is draining is woken — what the
    dispatcher does every tick, at once.
    """
    now = timezone.now()
    total = sum(stuck_counts(now).values())
    while lifecycle.reclaim_expired(now=now):
        pass
    endpoints = [pk for pk, _ in endpoints_to_wake(now, limit=1_000_000)]
    wake(endpoints)
    if progress and total:
        progress(total)
    return total
