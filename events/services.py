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
from deliveries.fanout import deliveries_create, deliveries_create_many
from deliveries.models import Trigger
from deliveries.signing import encode_envelope
from endpoints.models import Partner
from events.models import Event, EventType, SchemaMode
from events.routing import event_type_active, partner_active, schema_validator
from events.schemas import describe, payload_problems
from events.selectors import routes_for_event
from webhookhub import signals, tracing
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
    `deliveries_count`. An event type whose `schema_mode` is `enforce` refuses `data`
    that does not validate against its schema (the ValidationError on `data` names each
    JSON path and rule); `warn` accepts it and records the problems on the event.
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


def _publish_attributes(event_type, *args, **kwargs) -> dict:
    return {"webhookhub.event.type": str(event_type)}


def _published_attributes(result: tuple[Event, bool]) -> dict:
    event, created = result
    return {
        "webhookhub.event.id": event.public_id,
        "webhookhub.event.created": created,
        "webhookhub.deliveries": event.deliveries_count,
    }


@tracing.traced(tracing.PUBLISH, before=_publish_attributes, after=_published_attributes)
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
    event = _prepared(
        event_type,
        data,
        partner=partner,
        source=source,
        idempotency_key=idempotency_key,
        occurred_at=occurred_at,
        tags=tags,
    )
    type_obj = event.event_type
    if idempotency_key:
        existing = _existing(event.idempotency_key)
        if existing is not None:
            return existing, False

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
            existing = _existing(event.idempotency_key) if idempotency_key else None
            if existing is None:
                raise
            return existing, False
        held: list[int] = []
        if endpoint_ids is None:
            taken = _routes_for(event)
            endpoint_ids = [route.endpoint_id for route in taken]
            held = [route.endpoint_id for route in taken if not route.enabled]
        deliveries = deliveries_create(
            event,
            endpoint_ids,
            trigger=trigger,
            trigger_by=trigger_by,
            enqueue=enqueue,
            held=held,
        )
        # [metrics] counted when the caller's transaction commits (a rollback publishes nothing)
        transaction.on_commit(
            partial(metrics.event_published, type_obj.name, len(deliveries)), robust=True
        )
        signals.send_on_commit(signals.event_published, partial(_published, event, deliveries))
    event.created = True
    event.deliveries_count = len(deliveries)
    return event, True


def _prepared(event_type, data, *, partner, source, idempotency_key, occurred_at, tags) -> Event:
    """The unsaved Event for these arguments, or a ValidationError naming the field.

    Every argument is checked before the first query; the catalog and partner lookups
    come from `events.routing` (cached per process)."""
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
    schema_version, schema_problems = _schema_check(type_obj, data)
    return Event(
        public_id=public_id,
        event_type=type_obj,
        schema_version=schema_version,
        schema_problems=schema_problems,
        partner=_partner(partner),
        source=source,
        payload=data,
        idempotency_key=idempotency_key or None,
        tags=tags,
        occurred_at=occurred_at,
        body=body.decode(),
        **tracing.event_trace_fields(),  # the attempts join the publish's trace
    )


def _routes_for(event: Event) -> list:
    """The endpoints this (prepared) event goes to, by subscription and filters (those
    switched off too: their deliveries are held)."""
    envelope = json.loads(event.body)
    return routes_for_event(event.event_type.name, event.partner, envelope)


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


def _schema_check(event_type: EventType, data: dict) -> tuple[int | None, list[dict]]:
    """`(schema version checked against, problems)`: `(None, [])` when the type's mode is
    off (nothing is done at all). In enforce mode a payload that does not validate is a
    ValidationError on `data` naming each path and rule:
    `data.amount: 'x' is not of type 'integer'`."""
    if event_type.schema_mode == SchemaMode.OFF or event_type.schema is None:
        return None, []
    problems = payload_problems(schema_validator(event_type), data)
    if problems and event_type.schema_mode == SchemaMode.ENFORCE:
        raise ValidationError(
            {"data": [ValidationError(describe(problem), code="schema") for problem in problems]}
        )
    return event_type.schema_version, problems


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


@tracing.traced(
    tracing.PUBLISH,
    before=lambda items, **kwargs: {"webhookhub.events": len(items)},
    after=lambda results: {"webhookhub.events.created": sum(1 for _, new in results if new)},
)
def events_publish_batch(
    items: Sequence[dict], *, trigger_by: str = ""
) -> list[tuple[Event, bool]]:
    """Publish several events all or nothing; returns `(event, created)` per item.

    Each item holds `publish()`'s arguments (`type`, `data`, and optionally `partner`,
    `source`, `idempotency_key`, `occurred_at`, `tags`). If any item is refused nothing
    is written, and the ValidationError names the item: `{"3.type": [...]}`. A key
    already stored, or repeated within the batch, returns the first event.

    The new events go in as one multi-row INSERT and all their deliveries as another,
    whatever the batch size; if a concurrent publisher stores one of the keys first, the
    batch is published item by item instead (the unique key decides, as for one event).
    """
    prepared = []
    for index, item in enumerate(items):
        try:
            prepared.append(_prepared(item["type"], item["data"], **_item_options(item)))
        except ValidationError as exc:
            by_field = exc.error_dict if hasattr(exc, "error_dict") else {"": exc.error_list}
            raise ValidationError(
                {f"{index}.{field}".rstrip("."): errors for field, errors in by_field.items()}
            ) from None
    keys = [event.idempotency_key for event in prepared if event.idempotency_key]
    stored = {key: _existing(key) for key in _stored_keys(keys)}
    firsts: dict[str, Event] = {}
    new = []
    for event in prepared:
        key = event.idempotency_key
        if key and (key in stored or key in firsts):
            continue
        new.append(event)
        if key:
            firsts[key] = event
    with transaction.atomic():
        try:
            with transaction.atomic(savepoint=bool(keys)):
                Event.objects.bulk_create(new, batch_size=500)
        except IntegrityError:
            if not keys:
                raise
            logger.info("batch meets a concurrent publisher's idempotency key: item by item")
            return _publish_one_by_one(items, trigger_by=trigger_by)
        taken = {event.public_id: _routes_for(event) for event in new}
        routes = {key: [r.endpoint_id for r in found] for key, found in taken.items()}
        deliveries_create_many(
            [(event.pk, endpoint) for event in new for endpoint in routes[event.public_id]],
            trigger=Trigger.AUTO,
            trigger_by=trigger_by,
            held=sorted(
                {r.endpoint_id for found in taken.values() for r in found if not r.enabled}
            ),
        )
        counts = [(event.event_type.name, len(routes[event.public_id])) for event in new]
        transaction.on_commit(partial(_count_published, counts), robust=True)  # [metrics]
        signals.send_on_commit(
            signals.event_published,
            lambda: [_published(e, routes[e.public_id]) for e in new],
        )
    for event in new:
        event.created, event.deliveries_count = True, len(routes[event.public_id])
    results = []
    for event in prepared:
        key = event.idempotency_key
        if key in stored:
            results.append((stored[key], False))
        elif key and firsts[key] is not event:
            results.append((firsts[key], False))
        else:
            results.append((event, True))
    return results


def _stored_keys(keys: list[str]) -> list[str]:
    if not keys:
        return []
    return list(
        Event.objects.filter(idempotency_key__in=keys).values_list("idempotency_key", flat=True)
    )


def _published(event: Event, deliveries: Sequence) -> signals.EventPublished:
    """The `event_published` notification (built only when someone listens)."""
    return signals.EventPublished(
        event_id=event.public_id,
        event_type=event.event_type.name,
        partner_id=event.partner.public_id if event.partner else None,
        source=event.source,
        occurred_at=event.occurred_at,
        deliveries=len(deliveries),
    )


def _count_published(counts: list[tuple[str, int]]) -> None:
    for type_name, deliveries in counts:
        metrics.event_published(type_name, deliveries)


def _publish_one_by_one(items: Sequence[dict], *, trigger_by: str) -> list[tuple[Event, bool]]:
    """The batch, item by item (each insert can meet a concurrent publisher's key)."""
    return [
        event_publish(item["type"], item["data"], **_item_options(item), trigger_by=trigger_by)
        for item in items
    ]


def _item_options(item: dict) -> dict:
    """publish()'s keyword arguments from one batch item."""
    return {
        "partner": item.get("partner"),
        "source": item.get("source", ""),
        "idempotency_key": item.get("idempotency_key"),
        "occurred_at": item.get("occurred_at"),
        "tags": item.get("tags", ()),
    }
