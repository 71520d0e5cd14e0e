"""Writing the audit trail. Every service that changes state calls `audit_record` in
its own transaction, so the row exists exactly when the change does.

An action taken in the admin (`by="admin:<username>"`) is also written to Django's
admin log, so it shows in "Recent actions" and on the object's History page; the
admin logs its own add/change/delete forms itself, so those are not written twice.
"""

from __future__ import annotations

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils.translation import gettext as _

from audit.models import Action, AuditEntry

ADMIN_PREFIX = "admin:"
# The admin's own forms log these (LogEntry ADDITION / CHANGE / DELETION).
LOGGED_BY_THE_ADMIN = {Action.ENDPOINT_CREATED, Action.ENDPOINT_UPDATED, Action.ENDPOINT_DELETED}
MAX_IDS = 100  # ids kept in `details` of a bulk action


def describe(obj: models.Model) -> tuple[str, str, str, int | None]:
    """(object type, object id, label, partner pk) of an endpoint, delivery, event, API
    token, event type or partner."""
    kind = obj._meta.model_name
    if kind == "endpoint":
        return "endpoint", obj.public_id, obj.name, obj.partner_id
    if kind == "delivery":
        partner = getattr(obj, "_audit_partner_id", None)
        if partner is None:
            partner = (
                type(obj)
                .objects.filter(pk=obj.pk)
                .values_list("endpoint__partner_id", flat=True)
                .first()
            )
        return "delivery", obj.public_id, obj.public_id, partner
    if kind == "event":
        return "event", obj.public_id, obj.public_id, obj.partner_id
    if kind == "apitoken":
        return "api_token", obj.prefix, obj.name or obj.prefix, obj.partner_id
    if kind == "eventtype":
        return "event_type", obj.name, obj.name, None
    if kind == "partner":
        return "partner", obj.public_id, obj.name, obj.pk
    raise TypeError(f"no audit description for {kind}")


def audit_record(
    action: str,
    obj: models.Model,
    *,
    by: str,
    reason: str = "",
    count: int | None = None,
    details: dict | None = None,
) -> AuditEntry:
    object_type, object_id, label, partner_id = describe(obj)
    entry = AuditEntry.objects.create(
        actor=(by or "unknown")[:150],
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=str(label)[:200],
        partner_id=partner_id,
        reason=(reason or "")[:500],
        count=count,
        details=details or {},
    )
    if by and by.startswith(ADMIN_PREFIX) and action not in LOGGED_BY_THE_ADMIN:
        _admin_log(entry, obj)
    return entry


def audit_bulk(
    action: str, groups: dict, *, by: str, reason: str = "", details: dict | None = None
) -> list[AuditEntry]:
    """One entry per endpoint for a bulk action on its deliveries. `groups` maps each
    endpoint to (how many deliveries, the public ids of the first `MAX_IDS`)."""
    return [
        audit_record(
            action,
            endpoint,
            by=by,
            reason=reason,
            count=count,
            details={**(details or {}), "deliveries": list(ids)[:MAX_IDS]},
        )
        for endpoint, (count, ids) in groups.items()
        if count
    ]


def _admin_log(entry: AuditEntry, obj: models.Model) -> None:
    username = entry.actor[len(ADMIN_PREFIX) :]
    user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}).first()
    if user is None:
        return
    LogEntry.objects.create(
        user=user,
        content_type=ContentType.objects.get_for_model(obj, for_concrete_model=False),
        object_id=str(obj.pk),
        object_repr=entry.object_repr,
        action_flag=CHANGE,
        change_message=entry_text(entry),
    )


def entry_text(entry: AuditEntry) -> str:
    """The entry in words: "Endpoint switched off — reason: …" (translated)."""
    text = str(Action(entry.action).label) if entry.action in Action.values else entry.action
    if entry.count is not None:
        text = _("%(action)s (%(count)s)") % {"action": text, "count": entry.count}
    if entry.reason:
        text = _("%(action)s — reason: %(reason)s") % {"action": text, "reason": entry.reason}
    return text
