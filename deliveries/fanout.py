"""Delivery rows for a published event, handed to the workers when the transaction commits.

`publish()` (events) calls `deliveries_create` — the one door from events into the
deliveries app — and so do replays that reach an endpoint without a delivery yet.

On PostgreSQL the rows go in as one INSERT … SELECT over arrays (the statement is the
same size for 1 or 10,000 endpoints, and no model instance is built per row); other
databases use `bulk_create`.
"""

from collections.abc import Sequence
from datetime import datetime

from django.db import connection
from django.utils import timezone

from deliveries.dispatch import wake_on_commit
from deliveries.models import Delivery, DeliveryStatus, Trigger
from deliveries.wakeups import NOTIFY_SQL
from webhookhub.ids import delivery_id

# Every NOT NULL column of deliveries_delivery without a database default, in order.
_COLUMNS = (
    "public_id", "event_id", "endpoint_id", "status", "attempt_count", "next_attempt_at",
    "claimed_until", "lease_token", "next_trigger", "next_trigger_by", "last_error",
    "created_at", "updated_at",
)  # fmt: skip
_INSERT = (
    f"INSERT INTO deliveries_delivery ({', '.join(_COLUMNS)}) "  # noqa: S608 (constants only)
    "SELECT p, v, e, %(status)s, 0, %(now)s, NULL, '', %(trigger)s, "
    "%(trigger_by)s, '', %(now)s, %(now)s "
    "FROM unnest(%(public_ids)s::varchar[], %(events)s::bigint[], %(endpoints)s::bigint[]) "
    "AS t(p, v, e) "
    "RETURNING id"
)
# The same, and the endpoints' running drains told on commit (`deliveries.wakeups`):
# one statement still.
_INSERT_NOTIFY = (
    f"WITH ins AS ({_INSERT}), n AS ({NOTIFY_SQL}) "  # noqa: S608 (constants only)
    "SELECT ins.id FROM ins CROSS JOIN (SELECT count(*) FROM n) AS c ORDER BY ins.id"
)


def deliveries_create(
    event,
    endpoint_ids: Sequence[int],
    *,
    trigger: str = Trigger.AUTO,
    trigger_by: str = "",
    enqueue: bool = True,
    held: Sequence[int] = (),
) -> list[int]:
    """Insert one due delivery of `event` per endpoint; return their ids.

    With `enqueue` their endpoints are woken on commit (the dispatcher wakes them
    otherwise, e.g. if that task is lost) — except the `held` ones (switched off: their
    deliveries wait until the endpoint is switched on, which wakes it).
    """
    return deliveries_create_many(
        [(event.pk, endpoint_id) for endpoint_id in endpoint_ids],
        trigger=trigger,
        trigger_by=trigger_by,
        enqueue=enqueue,
        held=held,
    )


def deliveries_create_many(
    pairs: Sequence[tuple[int, int]],
    *,
    trigger: str = Trigger.AUTO,
    trigger_by: str = "",
    enqueue: bool = True,
    held: Sequence[int] = (),
) -> list[int]:
    """`deliveries_create` for many events at once: one delivery per (event pk,
    endpoint id) pair, in one statement on PostgreSQL."""
    if not pairs:
        return []
    now = timezone.now()
    quiet = set(held)
    woken = [pk for pk in dict.fromkeys(e for _, e in pairs) if pk not in quiet] if enqueue else []
    if connection.vendor == "postgresql":
        ids = _insert_postgresql(pairs, now, trigger, trigger_by, notify=woken)
    else:
        rows = [
            Delivery(
                event_id=event_pk,
                endpoint_id=endpoint_id,
                status=DeliveryStatus.PENDING,
                next_attempt_at=now,
                next_trigger=trigger,
                next_trigger_by=trigger_by,
            )
            for event_pk, endpoint_id in pairs
        ]
        ids = [d.pk for d in Delivery.objects.bulk_create(rows, batch_size=500)]
    if enqueue:
        wake_on_commit(woken)
    return ids


def _insert_postgresql(
    pairs: Sequence[tuple[int, int]],
    now: datetime,
    trigger: str,
    trigger_by: str,
    *,
    notify: Sequence[int],
) -> list[int]:
    params = {
        "notify": list(notify),
        "status": DeliveryStatus.PENDING.value,
        "now": now,
        "trigger": str(trigger),
        "trigger_by": trigger_by,
        "public_ids": [delivery_id() for _ in pairs],
        "events": [event_pk for event_pk, _ in pairs],
        "endpoints": [endpoint_id for _, endpoint_id in pairs],
    }
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_NOTIFY if notify else _INSERT, params)
        return [row[0] for row in cursor.fetchall()]
