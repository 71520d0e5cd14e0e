"""Publishing: turn "something happened" into an Event and its Deliveries, durably.

`publish()` runs inside the caller's transaction. The rows are written there; the
workers hear about them only when that transaction commits (`transaction.on_commit`),
so a rollback sends nothing and a commit is never lost: if the hand-off to the broker
fails, the dispatcher finds the due deliveries in the database anyway.
"""

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import partial  # [metrics]

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from deliveries import metrics
from deliveries.fanout import deliveries_create
from deliveries.models import Trigger
from deliveries.signing import encode_envelope
from endpoints.models import Partner
from events.models import Event, EventType
from events.routing import event_type_active, partner_active, routing_cache_clear
from events.selectors import endpoint_ids_for_event
from webhookhub.ids import event_id
from webhookhub.json_values import json_problem, text_problem

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
    event, _created = event_publish(
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
    subscription matching (a test event goes to exactly one endpoint).

    Every argument is checked before the first query: text that PostgreSQL cannot
    store (NUL, lone surrogates) or a payload that is not plain JSON (NaN, nested past
    the API's depth limit, over `WEBHOOKHUB_MAX_PAYLOAD_BYTES` as an envelope) is a
    ValidationError, never a database error that would break the caller's transaction.
    """
    event_type = _event_type_name(event_type)
    if isinstance(partner, str):
        _text("partner", partner)
    tags = _tags(tags)
    source = _source(source)
    if idempotency_key is not None:
        idempotency_key = _idempotency_key(idempotency_key)
    occurred_at = _occurred_at(occurred_at)
    public_id = event_id()
    body = _envelope(public_id, event_type, occurred_at, data)

    type_obj = _event_type(event_type)
    partner_obj = _partner(partner)
    if idempotency_key:
        existing = _existing(idempotency_key)
        if existing is not None:
            return existing, False

    event = Event(
        public_id=public_id,
        event_type=type_obj,
        partner=partner_obj,
        source=source,
        payload=data,
        idempotency_key=idempotency_key or None,
        tags=tags,
        occurred_at=occurred_at,
        body=body.decode(),
    )
    # No savepoint of our own: the caller's transaction (or this one) is the unit.
    with transaction.atomic(savepoint=False):
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


def _existing(idempotency_key: str) -> Event | None:
    event = (
        Event.objects.filter(idempotency_key=idempotency_key).select_related("event_type").first()
    )
    if event is not None:
        event.created = False
        event.deliveries_count = event.deliveries.count()
    return event


def _text(field: str, value: str) -> str:
    problem = text_problem(value, field)
    if problem:
        raise ValidationError({field: problem})
    return value


def _event_type_name(name) -> str:
    if not isinstance(name, str) or not name:
        raise ValidationError({"type": _("Give the event type name, e.g. order.paid.")})
    return _text("type", name)


def _occurred_at(value) -> datetime:
    """An aware datetime, in UTC: Python takes offsets up to ±23:59, PostgreSQL ±15:59."""
    if value is None:
        return timezone.now()
    if not isinstance(value, datetime) or timezone.is_naive(value):
        raise ValidationError({"occurred_at": _("Give an aware datetime (with a time zone).")})
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError):
        value = None
    if value is None or not 1 <= value.year <= 9998:
        raise ValidationError({"occurred_at": _("The time is out of range.")})
    return value


def _envelope(public_id: str, event_type: str, occurred_at: datetime, data) -> bytes:
    """The bytes every attempt will send, or a ValidationError naming what in `data`
    cannot be sent."""
    if not isinstance(data, dict):
        raise ValidationError({"data": _("The payload must be a JSON object.")})
    problem = json_problem(data, "data")
    if problem:
        raise ValidationError({"data": problem})
    try:
        body = encode_envelope(
            event_id=public_id, event_type=event_type, timestamp=occurred_at, data=data
        )
    except (TypeError, ValueError) as exc:
        message = _("The payload is not JSON-serialisable: %(reason)s") % {"reason": exc}
        raise ValidationError({"data": message}) from None
    limit = settings.WEBHOOKHUB_MAX_PAYLOAD_BYTES
    if len(body) > limit:
        message = _("The payload is %(size)s bytes; the limit is %(limit)s bytes.") % {
            "size": len(body),
            "limit": limit,
        }
        raise ValidationError({"data": ValidationError(message, code="payload_too_large")})
    return body


def _event_type(name: str) -> EventType:
    found = event_type_active(name)
    if found is None:
        raise ValidationError({"type": _("Unknown event type %(name)r.") % {"name": name}})
    return found


def _partner(partner) -> Partner | None:
    if partner is None or isinstance(partner, Partner):
        if partner is not None and not partner.is_active:
            raise ValidationError(
                {"partner": _("Partner %(name)r is inactive.") % {"name": partner.name}}
            )
        return partner
    if isinstance(partner, str):
        found = partner_active(partner)
        if found is None:
            raise ValidationError(
                {"partner": _("Unknown or inactive partner %(id)r.") % {"id": partner}}
            )
        return found
    raise ValidationError({"partner": _("Give a partner id (prt_…) or nothing for a broadcast.")})


def _tags(tags) -> list[str]:
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        raise ValidationError({"tags": _("Tags must be a list of strings.")})
    tags = list(tags)
    if len(tags) > MAX_TAGS or not all(isinstance(t, str) and 0 < len(t) <= 100 for t in tags):
        raise ValidationError(
            {
                "tags": _("Tags must be at most %(max)s non-empty strings of up to 100 characters.")
                % {"max": MAX_TAGS}
            }
        )
    for tag in tags:
        _text("tags", tag)
    return tags


def _source(source) -> str:
    if not isinstance(source, str) or len(source) > MAX_SOURCE_LENGTH:
        raise ValidationError(
            {
                "source": _("Source must be a string of at most %(max)s characters.")
                % {"max": MAX_SOURCE_LENGTH}
            }
        )
    return _text("source", source)


def _idempotency_key(key) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValidationError(
            {
                "idempotency_key": _("The idempotency key must be 1 to %(max)s characters.")
                % {"max": MAX_IDEMPOTENCY_KEY_LENGTH}
            }
        )
    return _text("idempotency_key", key)


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
        raise ValidationError({"name": _("Names starting with webhookhub. are reserved.")})
    event_type = EventType(name=name, description=description, example=example, schema=schema)
    event_type.full_clean()
    event_type.save()
    return event_type


def event_type_archive(event_type: EventType, *, by: str = "") -> bool:
    """Stop accepting events of this type (history stays). False if already archived."""
    if event_type.name.startswith(RESERVED_EVENT_TYPE_PREFIX):
        raise ValidationError({"name": _("webhookhub's own event types cannot be archived.")})
    updated = EventType.objects.filter(pk=event_type.pk, archived_at__isnull=True).update(
        archived_at=timezone.now()
    )
    routing_cache_clear()
    event_type.refresh_from_db()
    return bool(updated)


def event_type_unarchive(event_type: EventType, *, by: str = "") -> bool:
    """Accept events of an archived type again. False if it was not archived."""
    updated = EventType.objects.filter(pk=event_type.pk, archived_at__isnull=False).update(
        archived_at=None
    )
    routing_cache_clear()
    event_type.refresh_from_db()
    return bool(updated)
