"""Erasing events' payloads while keeping their history (`expunge_payloads`, the API's
`DELETE /api/v1/events/{id}/payload/`).

An erased ("expunged") event keeps its id, type, partner, source, tags and times, its
deliveries' ids, statuses and counts, each attempt's number, trigger, times, duration,
URL, masked request headers and status code, and the audit trail. It loses what may
hold the data that was published or what a receiver said about it:

- the payload becomes `{"expunged": true}` and the body the envelope with that as
  `data` (same id, type and timestamp);
- every attempt's response body and response headers are emptied;
- each delivery's `last_error` keeps only its kind (`HTTP 503`, not the receiver's words).

Its waiting deliveries are cancelled (a tombstone is not a delivery; ordered queues move
on) and nothing sends it again: replay, retry and recover refuse it (`lifecycle.resend`
skips its deliveries; `event_replay` raises). An event with a delivery in flight (or
locked by someone right now) is not erased now: the worker has its bytes and will record
the answer — it is reported as busy, and erasing it again a few seconds later succeeds.
Erasing is idempotent.

Locks: per batch, the events (FOR NO KEY UPDATE: what a replay takes to check the
event; publishing and delivering never lock events), then their deliveries, skipping
those someone holds (that event waits for the next run, reported busy). Claims skip
locked deliveries too, so neither waits on the other; a batch is 100 events.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Count, F, QuerySet, Value
from django.db.models.functions import Left, StrIndex
from django.utils import timezone

from audit.models import Action
from audit.services import audit_record
from deliveries.lifecycle import skip_locked
from deliveries.models import WAITING_STATUSES, Delivery, DeliveryAttempt, DeliveryStatus
from deliveries.services import deliveries_cancel
from deliveries.signing import encode_envelope
from events.models import EXPUNGED_PAYLOAD, Event

Progress = Callable[[int], None] | None
CANCEL_REASON = "payload erased"


@dataclass
class ExpungeResult:
    events: int = 0  # erased now
    already: int = 0  # erased before
    busy: list[str] = field(default_factory=list)  # public ids with a delivery in flight
    deliveries_cancelled: int = 0
    attempts: int = 0  # attempt rows emptied

    def add(self, other: "ExpungeResult") -> None:
        self.events += other.events
        self.already += other.already
        self.busy += other.busy
        self.deliveries_cancelled += other.deliveries_cancelled
        self.attempts += other.attempts


def event_expunge(event: Event, *, by: str, reason: str = "") -> ExpungeResult:
    """Erase one event's payload (see the module). `busy` names it if a delivery of it
    is in flight right now (nothing changed then)."""
    return events_expunge(Event.objects.filter(pk=event.pk), by=by, reason=reason)


def events_expunge(
    queryset: QuerySet,
    *,
    by: str,
    reason: str = "",
    dry_run: bool = False,
    batch_size: int = 100,
    progress: Progress = None,
) -> ExpungeResult:
    """Erase the payloads of the events of `queryset`, a batch per transaction (keyset
    by primary key). `dry_run` counts what would change and changes nothing."""
    result = ExpungeResult()
    candidates = queryset.order_by("pk").values_list("pk", flat=True)
    last_pk = 0
    while True:
        ids = list(candidates.filter(pk__gt=last_pk)[:batch_size])
        if not ids:
            break
        last_pk = ids[-1]
        with transaction.atomic():
            result.add(_expunge_batch(ids, by=by, reason=reason, dry_run=dry_run))
        if progress:
            progress(len(ids))
    return result


def _expunge_batch(ids: list[int], *, by: str, reason: str, dry_run: bool) -> ExpungeResult:
    counts = ExpungeResult()
    events = (
        Event.objects.filter(pk__in=ids)
        .select_related("event_type")
        .only("pk", "public_id", "partner_id", "occurred_at", "expunged_at", "event_type__name")
        .order_by("pk")
    )
    deliveries = Delivery.objects.filter(event_id__in=ids).order_by("pk")
    read = list(deliveries.values_list("pk", "event_id"))
    if not dry_run:
        # Events first, then deliveries (the order replay and prune lock in); a delivery
        # someone holds right now (a claim, a recording, a bulk replay) is skipped and
        # its event left for the next run: an erasure waits on no delivery, and cannot
        # deadlock with a replay that holds deliveries and waits for the event.
        events = events.select_for_update(no_key=True, of=("self",))
        deliveries = skip_locked(deliveries)
    events = list(events)
    statuses = list(deliveries.values_list("pk", "event_id", "status"))
    got = {pk for pk, _, _ in statuses}
    busy = {event_id for _, event_id, status in statuses if status == DeliveryStatus.IN_FLIGHT}
    busy |= {event_id for pk, event_id in read if pk not in got}
    counts.busy = [e.public_id for e in events if e.pk in busy]
    events = [e for e in events if e.pk not in busy]
    fresh = [e for e in events if e.expunged_at is None]
    counts.events, counts.already = len(fresh), len(events) - len(fresh)
    done = [e.pk for e in events]
    waiting = Delivery.objects.filter(event_id__in=done, status__in=WAITING_STATUSES)
    # Those with something left to empty (an attempt recorded after an earlier erasure
    # of its event is emptied by erasing again).
    attempts = DeliveryAttempt.objects.filter(delivery__event_id__in=done).exclude(
        response_body="", response_headers={}
    )
    if dry_run:
        counts.deliveries_cancelled = waiting.count()
        counts.attempts = attempts.count()
        return counts
    per_event = dict(
        attempts.order_by()
        .values("delivery__event_id")
        .annotate(n=Count("pk"))
        .values_list("delivery__event_id", "n")
    )
    if waiting.exists():
        counts.deliveries_cancelled = deliveries_cancel(
            waiting, by=by, reason=reason or CANCEL_REASON, note=CANCEL_REASON
        )
    counts.attempts = attempts.update(response_body="", response_headers={})
    # "HTTP 503: <what the receiver said>" → "HTTP 503".
    Delivery.objects.filter(
        event_id__in=done, last_error__startswith="HTTP ", last_error__contains=": "
    ).update(last_error=Left(F("last_error"), StrIndex(F("last_error"), Value(": ")) - 1))
    now = timezone.now()
    for event in fresh:
        event.payload = EXPUNGED_PAYLOAD
        event.body = _tombstone(event)
        event.expunged_at, event.expunged_by = now, by[:150]
    Event.objects.bulk_update(fresh, ["payload", "body", "expunged_at", "expunged_by"])
    for event in fresh:
        audit_record(
            Action.EXPUNGED,
            event,
            by=by,
            reason=reason,
            details={"attempts_emptied": per_event.get(event.pk, 0)},
        )
    return counts


def _tombstone(event: Event) -> str:
    return encode_envelope(
        event_id=event.public_id,
        event_type=event.event_type.name,
        timestamp=event.occurred_at,
        data=EXPUNGED_PAYLOAD,
    ).decode()
