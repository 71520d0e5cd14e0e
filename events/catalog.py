"""The event-type catalog: adding, archiving and restoring names (what publishers may
send). `webhookhub.*` names are webhookhub's own. Archiving applies to the next publish
at once in this process (`events.routing`) and within its cache seconds elsewhere."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import Action
from audit.services import audit_record
from events.models import EventType, SchemaMode
from events.routing import routing_cache_clear

RESERVED_EVENT_TYPE_PREFIX = "webhookhub."


@transaction.atomic
def event_type_create(
    *,
    name: str,
    description: str = "",
    example=None,
    schema=None,
    schema_mode: str = SchemaMode.OFF,
    by: str = "",
) -> EventType:
    """Add a name to the catalog. `webhookhub.*` names are webhookhub's own. A schema
    must be a valid JSON Schema and the example must validate against it (field errors
    otherwise)."""
    if isinstance(name, str) and name.startswith(RESERVED_EVENT_TYPE_PREFIX):
        raise ValidationError({"name": _("Names starting with webhookhub. are reserved.")})
    event_type = EventType(
        name=name,
        description=description,
        example=example,
        schema=schema,
        schema_mode=schema_mode,
    )
    event_type.full_clean()
    event_type.save()
    audit_record(Action.EVENT_TYPE_CREATED, event_type, by=by)
    return event_type


@transaction.atomic
def event_type_archive(event_type: EventType, *, by: str = "") -> bool:
    """Stop accepting events of this type (history stays). False if already archived."""
    if event_type.name.startswith(RESERVED_EVENT_TYPE_PREFIX):
        raise ValidationError({"name": _("webhookhub's own event types cannot be archived.")})
    updated = EventType.objects.filter(pk=event_type.pk, archived_at__isnull=True).update(
        archived_at=timezone.now()
    )
    if updated:
        audit_record(Action.EVENT_TYPE_ARCHIVED, event_type, by=by)
    routing_cache_clear()
    event_type.refresh_from_db()
    return bool(updated)


@transaction.atomic
def event_type_unarchive(event_type: EventType, *, by: str = "") -> bool:
    """Accept events of an archived type again. False if it was not archived."""
    updated = EventType.objects.filter(pk=event_type.pk, archived_at__isnull=False).update(
        archived_at=None
    )
    if updated:
        audit_record(Action.EVENT_TYPE_UNARCHIVED, event_type, by=by)
    routing_cache_clear()
    event_type.refresh_from_db()
    return bool(updated)
