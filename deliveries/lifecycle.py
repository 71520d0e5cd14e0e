"""Every status change of a delivery, each one conditional UPDATE.

The one module that moves deliveries between statuses (the groupings and the "due"
predicate are next to the model, in `deliveries.models`):

    waiting (pending/retrying) ──claim──► in_flight ──succeed──► succeeded
        ▲   ▲                              │  │  └────die─────► dead
        │   └─────────release / retry──────┘  │
        │          (lease expired: reclaim)───┘
        └── resend (people) ◄── succeeded / dead / cancelled
    waiting ──cancel──► cancelled

Worker transitions are guarded by the lease token: a worker whose lease expired (and
whose delivery someone else took) changes nothing. A claim takes only rows that are
due and not locked by anyone else (SKIP LOCKED on PostgreSQL), so claimers never wait
on each other. Transactions that write deliveries and `EndpointHealth` write the
deliveries first: one lock order everywhere, no deadlocks.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Case, CharField, DateTimeField, F, IntegerField, Value, When
from django.db.models.functions import Cast

from deliveries.models import (
    ORDERED_TRIGGERS,
    TEST_LIKE_EVENT_TYPES,
    WAITING_STATUSES,
    Delivery,
    DeliveryStatus,
    Trigger,
    due_q,
)
from events.models import Event

_WAITING_SQL = "('pending', 'retrying')"
# One statement: lock up to N due rows of one endpoint that nobody else holds, oldest
# first, make them ours, and return them with what sending needs of their event.
# Constants and placeholders only.
_CLAIM_SQL = (
    "WITH claimed AS (UPDATE deliveries_delivery SET status = 'in_flight', "  # noqa: S608
    "lease_token = %(token)s, claimed_until = %(until)s, updated_at = %(now)s "
    "WHERE id IN (SELECT id FROM deliveries_delivery "
    f"WHERE endpoint_id = %(endpoint)s AND status IN {_WAITING_SQL} "
    "AND next_attempt_at <= %(now)s {extra} "
    "ORDER BY next_attempt_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
    "RETURNING *) "
    "SELECT claimed.*, e.public_id AS event__public_id, e.body AS event__body, "
    "e.event_type_id AS event__event_type_id, e.partner_id AS event__partner_id, "
    "e.traceparent AS event__traceparent, e.tracestate AS event__tracestate "
    "FROM claimed JOIN events_event e ON e.id = claimed.event_id ORDER BY claimed.id"
)
_CLAIM_EXTRA = {
    "any": "",
    "tests": "AND next_trigger = 'test'",
    "others": "AND next_trigger <> 'test'",
    "unordered": "AND next_trigger NOT IN ('test', 'auto', 'retry')",
    "pk": "AND id = %(pk)s",
}
_EVENT_FIELDS = ("public_id", "body", "event_type_id", "partner_id", "traceparent", "tracestate")


def _with_event(rows) -> list[Delivery]:
    """Deliveries from the claim's rows, each with its event (the fields sending needs;
    the others load on access)."""
    claimed = []
    for delivery in rows:
        known = {f"{name}": getattr(delivery, f"event__{name}") for name in _EVENT_FIELDS}
        known["id"] = delivery.event_id
        names = [f.attname for f in Event._meta.concrete_fields if f.attname in known]
        delivery.event = Event.from_db(delivery._state.db, names, [known[name] for name in names])
        claimed.append(delivery)
    return claimed


def claim(
    endpoint_id: int,
    *,
    limit: int,
    token: str,
    lease: timedelta,
    now: datetime,
    which: str = "others",
    pk: int | None = None,
) -> list[Delivery]:
    """Take up to `limit` due deliveries of one endpoint: → in_flight with our lease.

    `which`: "any", "tests" (test events only), "others" (everything but tests),
    "unordered" (replays and manual retries: what bypasses an ordered queue), or "pk"
    (just `pk`, e.g. an ordered endpoint's head). Returns the claimed deliveries, their
    event loaded, in id order.
    """
    if limit <= 0:
        return []
    if connection.vendor == "postgresql":
        params = {
            "token": token,
            "until": now + lease,
            "now": now,
            "endpoint": endpoint_id,
            "limit": limit,
            "pk": pk,
        }
        sql = _CLAIM_SQL.format(extra=_CLAIM_EXTRA[which])
        return _with_event(Delivery.objects.raw(sql, params))
    due = Delivery.objects.filter(due_q(now), endpoint_id=endpoint_id)
    due = {
        "any": due,
        "tests": due.filter(next_trigger=Trigger.TEST),
        "others": due.exclude(next_trigger=Trigger.TEST),
        "unordered": due.exclude(next_trigger__in=(Trigger.TEST, *ORDERED_TRIGGERS)),
        "pk": due.filter(pk=pk),
    }[which]
    ordered = due.order_by("next_attempt_at", "pk").values_list("pk", flat=True)
    if not ordered[:1]:
        return []  # nothing due: no write transaction (SQLite's lock) for an idle poll
    with transaction.atomic():
        ids = list(ordered[:limit])
        if not ids:
            return []
        # The condition again: this UPDATE, not the SELECT, decides (SQLite serializes
        # writers, so a row another claimer took in between is simply not matched).
        Delivery.objects.filter(due_q(now), pk__in=ids).update(
            status=DeliveryStatus.IN_FLIGHT,
            lease_token=token,
            claimed_until=now + lease,
            updated_at=now,
        )
        return list(
            Delivery.objects.filter(pk__in=ids, lease_token=token)
            .select_related("event")
            .order_by("pk")
        )


def oldest_due(endpoint_id: int, *, now: datetime) -> int | None:
    """The endpoint's oldest due delivery (tests aside): what a circuit probes with."""
    return (
        Delivery.objects.filter(due_q(now), endpoint_id=endpoint_id)
        .exclude(next_trigger=Trigger.TEST)
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)
        .first()
    )


def claim_ids(
    ids: Iterable[int], *, token: str, lease_by_endpoint: dict[int, timedelta], now: datetime
) -> list[Delivery]:
    """Take exactly these deliveries if they are due (tests and tools that name them)."""
    taken = []
    rows = Delivery.objects.filter(due_q(now), pk__in=list(ids)).values_list("pk", "endpoint_id")
    for pk, endpoint_id in rows:
        taken += claim(
            endpoint_id,
            limit=1,
            token=token,
            lease=lease_by_endpoint[endpoint_id],
            now=now,
            which="pk",
            pk=pk,
        )
    return taken


def _waiting_again() -> Case:
    """The waiting status a delivery goes back to: pending until its first attempt."""
    return Case(
        When(attempt_count=0, then=Value(DeliveryStatus.PENDING)),
        default=Value(DeliveryStatus.RETRYING),
        output_field=CharField(),
    )


def release(pks: Sequence[int], *, token: str, now: datetime) -> int:
    """Give back claimed deliveries that were not sent (the lease ran short, the worker
    is stopping): waiting and due now, no attempt counted."""
    if not pks:
        return 0
    return Delivery.objects.filter(pk__in=list(pks), lease_token=token).update(
        status=_waiting_again(),
        next_attempt_at=now,
        claimed_until=None,
        lease_token="",
        updated_at=now,
    )


def _after_attempt(now: datetime) -> dict:
    return {
        "attempt_count": F("attempt_count") + 1,
        "last_attempt_at": now,
        "claimed_until": None,
        "lease_token": "",
        "updated_at": now,
    }


def succeed(pks_by_status: dict[int, list[int]], *, token: str, now: datetime) -> int:
    """In-flight → succeeded, one UPDATE per response status code (usually one)."""
    done = 0
    for status_code, pks in pks_by_status.items():
        done += Delivery.objects.filter(pk__in=pks, lease_token=token).update(
            status=DeliveryStatus.SUCCEEDED,
            last_status_code=status_code,
            last_error="",
            next_attempt_at=None,
            completed_at=now,
            **_after_attempt(now),
        )
    return done


def _per_row(values: dict[int, object], field) -> Case:
    whens = [When(pk=pk, then=Value(v, output_field=field)) for pk, v in values.items()]
    # Cast: a CASE whose branches are all NULL is text to PostgreSQL.
    return Cast(Case(*whens, output_field=field), field)


def fail(failures: Sequence[tuple[int, datetime | None, int | None, str]], *, token: str,
         now: datetime) -> list[int]:  # fmt: skip
    """In-flight → retrying at its time, or dead (time None). `failures` are
    (pk, next attempt or None, status code, error). Two UPDATEs whatever their number.
    Returns the ids that died."""
    retry = [f for f in failures if f[1] is not None]
    died = [f for f in failures if f[1] is None]
    if retry:
        Delivery.objects.filter(pk__in=[f[0] for f in retry], lease_token=token).update(
            status=DeliveryStatus.RETRYING,
            next_attempt_at=_per_row({f[0]: f[1] for f in retry}, DateTimeField()),
            next_trigger=Trigger.RETRY,
            next_trigger_by="",
            last_status_code=_per_row({f[0]: f[2] for f in retry}, IntegerField()),
            last_error=_per_row({f[0]: f[3] for f in retry}, CharField()),
            **_after_attempt(now),
        )
    dead = []
    if died:
        pks = [f[0] for f in died]
        # Which of them are still ours, before the UPDATE clears the token.
        dead = list(
            Delivery.objects.filter(pk__in=pks, lease_token=token).values_list("pk", flat=True)
        )
        Delivery.objects.filter(pk__in=dead, lease_token=token).update(
            status=DeliveryStatus.DEAD,
            next_attempt_at=None,
            completed_at=now,
            last_status_code=_per_row({f[0]: f[2] for f in died}, IntegerField()),
            last_error=_per_row({f[0]: f[3] for f in died}, CharField()),
            **_after_attempt(now),
        )
    return dead


def hold_ordered(endpoint_id: int, *, head_pk: int | None, now: datetime) -> int:
    """An ordered endpoint: every waiting delivery of its queue but the head is held
    (no `next_attempt_at`) until the head is done; `release_ordered` lets the next go."""
    rows = Delivery.objects.filter(
        endpoint_id=endpoint_id,
        status__in=WAITING_STATUSES,
        next_trigger__in=ORDERED_TRIGGERS,
        next_attempt_at__isnull=False,
    )
    if head_pk is not None:
        rows = rows.exclude(pk=head_pk)
    with transaction.atomic():
        # Rows someone is changing right now (a resend, a cancel) are skipped, not waited
        # for: no lock-order cycle with them; the next claim round holds what is left.
        ids = locked_ids(rows.order_by("pk"), 10_000)
        return Delivery.objects.filter(pk__in=ids).update(next_attempt_at=None, updated_at=now)


def ordered_head(endpoint_id: int) -> dict | None:
    """The oldest delivery of an ordered endpoint's queue (waiting or in flight)."""
    return (
        Delivery.objects.filter(
            endpoint_id=endpoint_id,
            status__in=(*WAITING_STATUSES, DeliveryStatus.IN_FLIGHT),
            next_trigger__in=ORDERED_TRIGGERS,
        )
        .order_by("created_at", "pk")
        .values("pk", "status", "claimed_until", "next_attempt_at")
        .first()
    )


def ordered_in_flight(endpoint_id: int) -> bool:
    """Whether any delivery of an ordered endpoint's queue is being sent."""
    return Delivery.objects.filter(
        endpoint_id=endpoint_id,
        status=DeliveryStatus.IN_FLIGHT,
        next_trigger__in=ORDERED_TRIGGERS,
    ).exists()


def release_ordered(endpoint_ids: Iterable[int], *, now: datetime) -> list[int]:
    """Make the head of each of these ordered endpoints' queues due if it is held."""
    released = []
    for endpoint_id in endpoint_ids:
        head = (
            Delivery.objects.filter(
                endpoint_id=endpoint_id,
                status__in=WAITING_STATUSES,
                next_trigger__in=ORDERED_TRIGGERS,
            )
            .order_by("created_at", "pk")
            .values("pk", "next_attempt_at")
            .first()
        )
        if head and head["next_attempt_at"] is None:
            Delivery.objects.filter(pk=head["pk"], next_attempt_at__isnull=True).update(
                next_attempt_at=now, updated_at=now
            )
            released.append(endpoint_id)
    return released


def release_held(endpoint_id: int, *, now: datetime) -> int:
    """Every held delivery of an endpoint becomes due (it was switched on again)."""
    return Delivery.objects.filter(
        endpoint_id=endpoint_id, status__in=WAITING_STATUSES, next_attempt_at__isnull=True
    ).update(next_attempt_at=now, updated_at=now)


def due_sooner(endpoint_id: int, *, now: datetime) -> int:
    """Waiting deliveries of an endpoint scheduled later become due now (its circuit
    closed: the backlog goes at once)."""
    return Delivery.objects.filter(
        endpoint_id=endpoint_id, status__in=WAITING_STATUSES, next_attempt_at__gt=now
    ).update(next_attempt_at=now, updated_at=now)


def resend(queryset, *, trigger: str, by: str, now: datetime) -> list[tuple[int, int]]:
    """People asked to send these again now (retry, replay, recover): → pending, due
    now, with who asked. In-flight rows and those of erased events are left alone. A test
    event's delivery stays a test (sent once, never retried). Returns (id, endpoint id)
    of the rows changed."""
    with transaction.atomic():
        rows = list(
            queryset.exclude(status=DeliveryStatus.IN_FLIGHT)
            # An erased event is never sent again (deliveries.erasure).
            .filter(event__expunged_at__isnull=True)
            .select_for_update(of=("self",))
            .order_by("pk")
            .values_list("pk", "endpoint_id", "event__event_type__name")
        )
        if rows:
            for is_test in (False, True):
                ids = [pk for pk, _, name in rows if (name in TEST_LIKE_EVENT_TYPES) == is_test]
                if not ids:
                    continue
                Delivery.objects.filter(pk__in=ids).exclude(status=DeliveryStatus.IN_FLIGHT).update(
                    status=DeliveryStatus.PENDING,
                    next_attempt_at=now,
                    next_trigger=Trigger.TEST if is_test else trigger,
                    next_trigger_by=by,
                    completed_at=None,
                    claimed_until=None,
                    lease_token="",
                    updated_at=now,
                )
    return [(pk, endpoint_id) for pk, endpoint_id, _ in rows]


def cancel(queryset, *, by: str, now: datetime, note: str = "") -> list[tuple[int, int]]:
    """Waiting → cancelled (`note`: why, after who, in `last_error`). Returns (id,
    endpoint id) of the rows cancelled."""
    with transaction.atomic():
        rows = list(
            queryset.filter(status__in=WAITING_STATUSES)
            .select_for_update()
            .order_by("pk")
            .values_list("pk", "endpoint_id")
        )
        Delivery.objects.filter(pk__in=[pk for pk, _ in rows], status__in=WAITING_STATUSES).update(
            status=DeliveryStatus.CANCELLED,
            next_attempt_at=None,
            claimed_until=None,
            lease_token="",
            completed_at=now,
            last_error=(f"cancelled by {by}: {note}" if note else f"cancelled by {by}")[:500],
            updated_at=now,
        )
    return rows


LOST_TEST_ERROR = (
    "The worker stopped while sending this test; it is not sent again. Send a new test."
)


def skip_locked(queryset):
    """The rows locked FOR UPDATE, skipping those someone else holds, where the database
    can (PostgreSQL); unchanged elsewhere (SQLite serializes writers)."""
    if connection.features.has_select_for_update_skip_locked:
        return queryset.select_for_update(skip_locked=True, of=("self",))
    return queryset


def locked_ids(queryset, limit: int) -> list[int]:
    """Primary keys of the next `limit` rows, locked; rows locked by others are skipped."""
    return list(skip_locked(queryset).values_list("pk", flat=True)[:limit])


def reclaim_expired(*, now: datetime, limit: int = 2000) -> list[int]:
    """In-flight rows whose lease ran out (their worker died) → waiting, due now. The
    attempt count is untouched: the receiver may have had it (at-least-once). A test is
    never sent twice: it is marked dead instead. Returns the endpoint ids concerned."""
    expired = Delivery.objects.filter(status=DeliveryStatus.IN_FLIGHT, claimed_until__lt=now)
    with transaction.atomic():
        tests = locked_ids(expired.filter(next_trigger=Trigger.TEST).order_by("pk"), limit)
        Delivery.objects.filter(pk__in=tests, status=DeliveryStatus.IN_FLIGHT).update(
            status=DeliveryStatus.DEAD,
            next_attempt_at=None,
            claimed_until=None,
            lease_token="",
            completed_at=now,
            last_error=LOST_TEST_ERROR,
            updated_at=now,
        )
        ids = locked_ids(
            expired.exclude(next_trigger=Trigger.TEST).order_by("claimed_until"), limit
        )
        if not ids:
            return []
        endpoints = set(Delivery.objects.filter(pk__in=ids).values_list("endpoint_id", flat=True))
        Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.IN_FLIGHT).update(
            status=_waiting_again(),
            next_attempt_at=now,
            claimed_until=None,
            lease_token="",
            updated_at=now,
        )
    return sorted(endpoints)


def in_flight_count(endpoint_id: int, *, now: datetime, exclude_token: str = "") -> int:
    """Requests to this endpoint under a live lease (tests excluded: they bypass the cap)."""
    rows = Delivery.objects.filter(
        endpoint_id=endpoint_id, status=DeliveryStatus.IN_FLIGHT, claimed_until__gte=now
    ).exclude(next_trigger=Trigger.TEST)
    if exclude_token:
        rows = rows.exclude(lease_token=exclude_token)
    return rows.count()
