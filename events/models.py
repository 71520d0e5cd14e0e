"""What happened: the event type catalog and the immutable event records."""

import re

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from events.schemas import compiled, describe, payload_problems, schema_problem
from webhookhub.ids import event_id
from webhookhub.json_values import json_problem

MISSING = object()

# The catalog's naming rule: lower-case words separated by dots (`order.paid`).
EVENT_TYPE_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")


class SchemaMode(models.TextChoices):
    """What `publish()` does with an event type's JSON Schema."""

    OFF = "off", _("off (informative)")
    WARN = "warn", _("warn (accept, flag the event)")
    ENFORCE = "enforce", _("enforce (refuse what does not validate)")


class EventType(models.Model):
    """A name in the catalog (`order.paid`) that events are published under.

    `schema_version` goes up by one whenever `schema` changes (on save, whoever saves),
    so each event can record which schema it was checked against.
    """

    name = models.CharField(max_length=200, unique=True, verbose_name=_("name"))
    description = models.TextField(blank=True, verbose_name=_("description"))
    example = models.JSONField(
        null=True, blank=True, help_text=_("An example `data` payload."), verbose_name=_("example")
    )
    schema = models.JSONField(
        null=True,
        blank=True,
        help_text=_("JSON Schema (Draft 2020-12) of `data`."),
        verbose_name=_("schema"),
    )
    schema_mode = models.CharField(
        max_length=10,
        choices=SchemaMode.choices,
        default=SchemaMode.OFF,
        help_text=_(
            "off: the schema is informative; warn: events that do not validate are "
            "accepted and flagged; enforce: they are refused."
        ),
        verbose_name=_("schema mode"),
    )
    schema_version = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text=_("Goes up by one each time the schema changes (0: never had one)."),
        verbose_name=_("schema version"),
    )
    archived_at = models.DateTimeField(null=True, blank=True, verbose_name=_("archived at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("event type")
        verbose_name_plural = _("event types")
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        stored = getattr(self, "_stored_schema", MISSING)
        if self._state.adding:
            if self.schema is not None and not self.schema_version:
                self.schema_version = 1
        elif stored is not MISSING and stored != self.schema:
            self.schema_version += 1
            update_fields = kwargs.get("update_fields")
            if update_fields is not None and "schema_version" not in update_fields:
                kwargs["update_fields"] = [*update_fields, "schema_version"]
        super().save(*args, **kwargs)
        self._stored_schema = self.schema

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        # What was stored, to tell on save whether the schema changed (Django's
        # documented `from_db` pattern: no extra query).
        instance._stored_schema = instance.__dict__.get("schema", MISSING)
        return instance

    def clean(self):
        errors = {}
        if not EVENT_TYPE_NAME.fullmatch(self.name or ""):
            errors["name"] = _("Use lower-case words separated by dots, e.g. order.paid.")
        for field in ("example", "schema"):
            problem = json_problem(getattr(self, field), field)
            if problem:
                errors[field] = problem
        if "schema" not in errors and self.schema is not None:
            problem = schema_problem(self.schema)
            if problem:
                errors["schema"] = problem
            elif "example" not in errors and self.example is not None:
                problems = payload_problems(compiled(self.schema), self.example, root="example")
                if problems:
                    errors["example"] = [
                        _("The example does not validate against the schema: %(problem)s")
                        % {"problem": describe(problem)}
                        for problem in problems
                    ]
        if self.schema_mode != SchemaMode.OFF and self.schema is None and "schema" not in errors:
            errors["schema_mode"] = _("Give a schema to check events against, or choose off.")
        if errors:
            raise ValidationError(errors)

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


# What an erased event keeps of its payload (`deliveries.erasure`).
EXPUNGED_PAYLOAD = {"expunged": True}


class Event(models.Model):
    """Something that happened, as it was published. Never changed after creation, but
    for one thing: an erasure (`expunged_at`) replaces its payload and body with a
    tombstone and keeps everything else.

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
    schema_version = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("The event type's schema version it was checked against; empty: not checked."),
        verbose_name=_("schema version"),
    )
    schema_problems = models.JSONField(
        default=list,
        blank=True,
        help_text=_("Where `data` did not validate against the schema (warn mode): the first few."),
        verbose_name=_("schema problems"),
    )
    occurred_at = models.DateTimeField(verbose_name=_("occurred at"))
    created_at = models.DateTimeField(
        auto_now_add=True, db_index=True, verbose_name=_("created at")
    )
    expunged_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text=_("When its payload was erased; it can no longer be sent."),
        verbose_name=_("payload erased at"),
    )
    expunged_by = models.CharField(
        max_length=150, blank=True, editable=False, verbose_name=_("payload erased by")
    )
    # The W3C trace context of the publish (webhookhub.tracing): every attempt of the
    # event joins that trace. Empty when nothing was tracing the publish.
    traceparent = models.CharField(
        max_length=55,
        blank=True,
        default="",
        editable=False,
        help_text=_("W3C trace context of the publish: its attempts join that trace."),
        verbose_name=_("traceparent"),
    )
    tracestate = models.CharField(
        max_length=512, blank=True, default="", editable=False, verbose_name=_("tracestate")
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

    @property
    def is_expunged(self) -> bool:
        return self.expunged_at is not None

    def expunged_notice(self) -> str:
        """What every screen shows instead of an erased payload."""
        return _("Payload erased at %(when)s.") % {
            "when": self.expunged_at.strftime("%Y-%m-%d %H:%M UTC")
        }
