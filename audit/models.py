"""The audit trail: one append-only row per state-changing action, whoever took it."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Action(models.TextChoices):
    ENDPOINT_CREATED = "endpoint.created", _("Endpoint registered")
    ENDPOINT_UPDATED = "endpoint.updated", _("Endpoint settings changed")
    ENDPOINT_DELETED = "endpoint.deleted", _("Endpoint deleted")
    ENDPOINT_DISABLED = "endpoint.disabled", _("Endpoint switched off")
    ENDPOINT_ENABLED = "endpoint.enabled", _("Endpoint switched on")
    SECRET_ROTATED = "endpoint.secret_rotated", _("Signing secret rotated")
    KEY_ROTATED = "endpoint.key_rotated", _("Signing key pair rotated")
    TOKEN_REGENERATED = "endpoint.token_regenerated", _("Bearer token regenerated")
    CIRCUIT_PROBED = "endpoint.probed", _("Circuit probed now")
    CIRCUIT_CLOSED = "endpoint.circuit_closed", _("Circuit closed by hand")
    TEST_SENT = "endpoint.test_sent", _("Test event sent")
    RECOVERED = "endpoint.recovered", _("Failed deliveries recovered")
    VERIFICATION_SENT = "endpoint.verification_sent", _("Verification challenge sent")
    VERIFIED = "endpoint.verified", _("Endpoint verified")
    REPLAYED = "event.replayed", _("Event replayed")
    EXPUNGED = "event.expunged", _("Event payload erased")
    RETRIED = "delivery.retried", _("Deliveries retried now")
    CANCELLED = "delivery.cancelled", _("Deliveries cancelled")
    API_TOKEN_CREATED = "api_token.created", _("API token created")
    API_TOKEN_REVOKED = "api_token.revoked", _("API token revoked")
    EVENT_TYPE_CREATED = "event_type.created", _("Event type created")
    EVENT_TYPE_ARCHIVED = "event_type.archived", _("Event type archived")
    EVENT_TYPE_UNARCHIVED = "event_type.unarchived", _("Event type unarchived")
    PORTAL_LINK_CREATED = "partner.portal_link_created", _("Portal sign-in link created")


class AuditEntry(models.Model):
    """Who did what to which object, when, why and to how many.

    `actor` is the `by=` label of the surface that acted: `admin:<username>`,
    `api:<token prefix>`, `portal:<partner>`, `command:<name>`, `system`. Rows are
    never changed or deleted by the application (`save` refuses an update)."""

    at = models.DateTimeField(default=timezone.now, verbose_name=_("when"))
    actor = models.CharField(max_length=150, verbose_name=_("who"))
    action = models.CharField(max_length=40, choices=Action.choices, verbose_name=_("action"))
    object_type = models.CharField(max_length=40, verbose_name=_("object type"))
    object_id = models.CharField(max_length=200, verbose_name=_("object id"))
    object_repr = models.CharField(max_length=200, blank=True, verbose_name=_("object"))
    partner = models.ForeignKey(
        "endpoints.Partner",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("partner"),
    )
    reason = models.CharField(max_length=500, blank=True, verbose_name=_("reason"))
    count = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("count"))
    details = models.JSONField(default=dict, blank=True, verbose_name=_("details"))

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit trail")
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["-at", "-id"], name="audit_recent"),
            models.Index(fields=["object_type", "object_id", "-at"], name="audit_object"),
            models.Index(fields=["partner", "-at"], name="audit_partner"),
            models.Index(fields=["actor", "-at"], name="audit_actor"),
        ]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("audit entries are append-only")
        super().save(*args, **kwargs)
