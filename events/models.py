"""What happened: the event type catalog and the immutable event records."""

import re

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from webhookhub.ids import event_id
from webhookhub.json_values import json_problem

# The catalog's naming rule: lower-case words separated by dots (`order.paid`).
EVENT_TYPE_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")


class EventType(models.Model):
    """A name in the catalog (`order.paid`) that events are published under."""

    name = models.CharField(max_length=200, unique=True, verbose_name=_("name"))
    description = models.TextField(blank=True, verbose_name=_("description"))
    example = models.JSONField(
        null=True, blank=True, help_text=_("An example `data` payload."), verbose_name=_("example")
    )
    schema = models.JSONField(
        null=True,
        blank=True,
        help_text=_("JSON Schema of `data` (informative)."),
        verbose_name=_("schema"),
    )
    archived_at = models.DateTimeField(null=True, blank=True, verbose_name=_("archived at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("event type")
        verbose_name_plural = _("event types")
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if not EVENT_TYPE_NAME.fullmatch(self.name or ""):
            errors["name"] = _("Use lower-case words separated by dots, e.g. order.paid.")
        for field in ("example", "schema"):
            problem = json_problem(getattr(self, field), field)
            if problem:
                errors[field] = problem
        if errors:
            raise ValidationError(errors)

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class Event(models.Model):
    """Something that happened, as it was published. Never changed after creation.

    `body` is the envelope `{"id","type","timestamp","data"}` serialized once at publish;
    every attempt and replay sends exactly these bytes.
    """

    public_id = models.CharField(
        max_length=32, unique=True, default=event_id, editable=False, verbose_name=_("public id")
    )
    event_type = models.ForeignKey(
        EventType, on_delete=models.PROTECT, related_name="events", verbose_name=_("event type")
    )
    partner = models.ForeignKey(
        "endpoints.Partner",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="events",
        help_text=_("Only this partner's endpoints receive it; empty means broadcast."),
        verbose_name=_("partner"),
    )
    source = models.CharField(max_length=200, blank=True, verbose_name=_("source"))
    payload = models.JSONField(verbose_name=_("payload"))
    body = models.TextField(editable=False, verbose_name=_("body"))
    idempotency_key = models.CharField(
        max_length=200, null=True, blank=True, unique=True, verbose_name=_("idempotency key")
    )
    tags = models.JSONField(default=list, blank=True, verbose_name=_("tags"))
    occurred_at = models.DateTimeField(verbose_name=_("occurred at"))
    created_at = models.DateTimeField(
        auto_now_add=True, db_index=True, verbose_name=_("created at")
    )

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["partner", "-created_at"], name="event_partner_recent"),
            models.Index(fields=["event_type", "-created_at"], name="event_type_recent"),
        ]

    def __str__(self):
        return self.public_id

    def __repr__(self):
        return f"<Event {self.public_id} {self.event_type_id}>"
