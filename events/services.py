"""Publishing: turn "something happened" into an Event and its Deliveries, durably.

`publish()` runs inside the caller's transaction. The rows are written there; the
workers hear about them only when that transaction commits (`transaction.on_commit`),
so a rollback sends nothing and a commit is never lost: if the hand-off to the broker
fails, the dispatcher finds the due deliveries in the database anyway.
"""

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import partial  # [metrics]

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from deliveries import metrics
from deliveries.dispatch import enqueue_on_commit, reservation
from deliveries.models import Delivery, DeliveryStatus, Trigger
from deliveries.signing import encode_envelope
from endpoints.models import Partner
from events.models import Event, EventType
from events.selectors import endpoint_ids_for_event

logger = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY_LENGTH = 200
MAX_TAGS = 20
MAX_SOURCE_LENGTH = 200


def publish(
    event_type: str,
    data: dict,
    *,
    partner: Partner | str | None = None,
    source: str = "",
    idempotency_key: str | None = None,
    occurred_at: datetime | None = None,
    tags: Iterable[str] = (),
) -> Event:
    """Record an event and one delivery per subscribed endpoint; return the Event.

    Call it inside your own `transaction.atomic()`: nothing is sent unless that
    transaction commits. A repeated `idempotency_key` returns the first event and writes
    nothing. Bad input raises `ValidationError` naming the field and writes nothing.
    The returned event carries `created` (False for an idempotent repeat) and
    `deliveries_count`.
    """
    event, _ = event_publish(
        event_type,
        data,
        partner=partner,
        source=source,
        idempotency_key=idempotency_key,
        occurred_at=occurred_at,
        tags=tags,
    )
    return event


def event_publish(
    event_type: str,
    data: dict,
    *,
    partner: Partner | str | None = None,
    source: str = "",
    idempotency_key: str | None = None,
    occurred_at: datetime | None = None,
    tags: Iterable[str] = (),
    endpoint_ids: Sequence[int] | None = None,
    trigger: str = Trigger.AUTO,
    trigger_by: str = "",
    enqueue: bool = True,
) -> tuple[Event, bool]:
    """`publish()` returning `(event, created)`; `endpoint_ids` bypasses
    subscription matching (a test event goes to exactly one endpoint)."""
    type_obj = _event_type(event_type)
    partner_obj = _partner(partner)
    tags = _tags(tags)
    source = _source(source)
    if idempotency_key is not None:
        idempotency_key = _idempotency_key(idempotency_key)
    if occurred_at is None:
        occurred_at = timezone.now()
    elif not isinstance(occurred_at, datetime) or timezone.is_naive(occurred_at):
        raise ValidationError({"occurred_at": "Give an aware datetime (with a time zone)."})
    if not isinstance(data, dict):
        raise ValidationError({"data": "The payload must be a JSON object."})

    if idempotency_key:
        existing = _existing(idempotency_key)
        if existing is not None:
            return existing, False

    event = Event(
        event_type=type_obj,
        partner=partner_obj,
        source=source,
        payload=data,
        idempotency_key=idempotency_key or None,
        tags=tags,
        occurred_at=occurred_at,
    )
    try:
        body = encode_envelope(
            event_id=event.public_id, event_type=type_obj.name, timestamp=occurred_at, data=data
        )
    except (TypeError, ValueError) as exc:
        raise ValidationError({"data": f"The payload is not JSON-serialisable: {exc}"}) from None
    limit = settings.WEBHOOKHUB_MAX_PAYLOAD_BYTES
    if len(body) > limit:
        raise ValidationError(
            {
                "data": ValidationError(
                    f"The payload is {len(body)} bytes; the limit is {limit} bytes.",
                    code="payload_too_large",
                )
            }
        )
    event.body = body.decode()

    with transaction.atomic():
        try:
            if idempotency_key:
                # A savepoint only where the insert may collide with a concurrent
                # publisher's key: after the error the transaction must go on.
                with transaction.atomic():
                    event.save(force_insert=True)
            else:
                event.save(force_insert=True)
        except IntegrityError:
            # Another publisher inserted the same idempotency key first (the unique
            # constraint decides, not a read-then-write): return theirs.
            existing = _existing(idempotency_key) if idempotency_key else None
            if existing is None:
                raise
            return existing, False
        if endpoint_ids is None:
            envelope = json.loads(body)
            endpoint_ids = endpoint_ids_for_event(type_obj.name, partner_obj, envelope)
        deliveries = deliveries_create(
            event, endpoint_ids, trigger=trigger, trigger_by=trigger_by, enqueue=enqueue
        )
        # [metrics] counted when the caller's transaction commits (a rollback publishes nothing)
        transaction.on_commit(
            partial(metrics.event_published, type_obj.name, len(deliveries)), robust=True
        )
    event.created = True
    event.deliveries_count = len(deliveries)
    return event, True


def deliveries_create(
    event: Event,
    endpoint_ids: Sequence[int],
    *,
    trigger: str = Trigger.AUTO,
    trigger_by: str = "",
    enqueue: bool = True,
) -> list[Delivery]:
    """Bulk-insert one due delivery per endpoint and hand them to the workers on commit."""
    if not endpoint_ids:
        return []
    now = timezone.now()
    # Handed to the fast path: the dispatcher leaves them alone for the reservation
    # period, and takes them only if their task was lost.
    reserved = now + reservation() if enqueue else None
    rows = [
        Delivery(
            event=event,
            endpoint_id=endpoint_id,
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
            claimed_until=reserved,
            next_trigger=trigger,
            next_trigger_by=trigger_by,
        )
        for endpoint_id in endpoint_ids
    ]
    created = Delivery.objects.bulk_create(rows, batch_size=500)
    if enqueue:
        enqueue_on_commit([d.pk for d in created])
    return created


def _existing(idempotency_key: str) -> Event | None:
    event = (
        Event.objects.filter(idempotency_key=idempotency_key).select_related("event_type").first()
    )
    if event is not None:
        event.created = False
        event.deliveries_count = event.deliveries.count()
    return event


def _event_type(name) -> EventType:
    if not isinstance(name, str) or not name:
        raise ValidationError({"type": "Give the event type name, e.g. order.paid."})
    try:
        return EventType.objects.get(name=name, archived_at__isnull=True)
    except EventType.DoesNotExist:
        raise ValidationError({"type": f"Unknown event type {name!r}."}) from None


def _partner(partner) -> Partner | None:
    if partner is None or isinstance(partner, Partner):
        if partner is not None and not partner.is_active:
            raise ValidationError({"partner": f"Partner {partner.name!r} is inactive."})
        return partner
    if isinstance(partner, str):
        found = Partner.objects.filter(public_id=partner, is_active=True).first()
        if found is None:
            raise ValidationError({"partner": f"Unknown or inactive partner {partner!r}."})
        return found
    raise ValidationError({"partner": "Give a partner id (prt_…) or nothing for a broadcast."})


def _tags(tags) -> list[str]:
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        raise ValidationError({"tags": "Tags must be a list of strings."})
    tags = list(tags)
    if len(tags) > MAX_TAGS or not all(isinstance(t, str) and 0 < len(t) <= 100 for t in tags):
        raise ValidationError(
            {"tags": f"Tags must be at most {MAX_TAGS} non-empty strings of up to 100 characters."}
        )
    return tags


def _source(source) -> str:
    if not isinstance(source, str) or len(source) > MAX_SOURCE_LENGTH:
        raise ValidationError(
            {"source": f"Source must be a string of at most {MAX_SOURCE_LENGTH} characters."}
        )
    return source


def _idempotency_key(key) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValidationError(
            {
                "idempotency_key": "The idempotency key must be 1 to "
                f"{MAX_IDEMPOTENCY_KEY_LENGTH} characters."
            }
        )
    return key


def events_publish_batch(
    items: Sequence[dict], *, trigger_by: str = ""
) -> list[tuple[Event, bool]]:
    """Publish several events all or nothing; returns `(event, created)` per item.

    Each item holds `publish()`'s arguments (`type`, `data`, and optionally `partner`,
    `source`, `idempotency_key`, `occurred_at`, `tags`). If any item is refused nothing
    is written, and the ValidationError names the item: `{"3.type": [...]}`.
    """
    results = []
    with transaction.atomic():
        for index, item in enumerate(items):
            try:
                results.append(
                    event_publish(
                        item["type"],
                        item["data"],
                        partner=item.get("partner"),
                        source=item.get("source", ""),
                        idempotency_key=item.get("idempotency_key"),
                        occurred_at=item.get("occurred_at"),
                        tags=item.get("tags", ()),
                        trigger_by=trigger_by,
                    )
                )
            except ValidationError as exc:
                by_field = exc.error_dict if hasattr(exc, "error_dict") else {"": exc.error_list}
                raise ValidationError(
                    {f"{index}.{field}".rstrip("."): errors for field, errors in by_field.items()}
                ) from None
    return results


RESERVED_EVENT_TYPE_PREFIX = "webhookhub."


def event_type_create(
    *, name: str, description: str = "", example=None, schema=None, by: str = ""
) -> EventType:
    """Add a name to the catalog. `webhookhub.*` names are webhookhub's own."""
    if isinstance(name, str) and name.startswith(RESERVED_EVENT_TYPE_PREFIX):
        raise ValidationError({"name": "Names starting with webhookhub. are reserved."})
    event_type = EventType(name=name, description=description, example=example, schema=schema)
    event_type.full_clean()
    event_type.save()
    return event_type


def event_type_archive(event_type: EventType, *, by: str = "") -> bool:
    """Stop accepting events of this type (history stays). False if already archived."""
    if event_type.name.startswith(RESERVED_EVENT_TYPE_PREFIX):
        raise ValidationError({"name": "webhookhub's own event types cannot be archived."})
    updated = EventType.objects.filter(pk=event_type.pk, archived_at__isnull=True).update(
        archived_at=timezone.now()
    )
    event_type.refresh_from_db()
    return bool(updated)


def event_type_unarchive(event_type: EventType, *, by: str = "") -> bool:
    """Accept events of an archived type again. False if it was not archived."""
    updated = EventType.objects.filter(pk=event_type.pk, archived_at__isnull=False).update(
        archived_at=None
    )
    event_type.refresh_from_db()
    return bool(updated)
