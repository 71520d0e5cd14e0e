"""Who receives webhooks and where: partners, their endpoints, subscriptions, API tokens."""

import hashlib
import secrets
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from endpoints.crypto import EncryptedJSONField, EncryptedTextField
from endpoints.validation import validate_endpoint_fields, validate_subscription_fields
from webhookhub.ids import endpoint_id, partner_id


class Partner(models.Model):
    """A company that receives webhooks."""

    public_id = models.CharField(
        max_length=32, unique=True, default=partner_id, editable=False, verbose_name=_("public id")
    )
    name = models.CharField(max_length=200, unique=True, verbose_name=_("name"))
    contact_email = models.EmailField(
        blank=True, help_text=_("Receives failure notices."), verbose_name=_("contact email")
    )
    is_active = models.BooleanField(
        default=True,
        help_text=_("Inactive partners receive nothing and cannot use the API."),
        verbose_name=_("is active"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("partner")
        verbose_name_plural = _("partners")
        ordering = ["name"]

    def __str__(self):
        return self.name


class ApiToken(models.Model):
    """A REST API credential. Only a hash is stored; the token is shown once."""

    class Role(models.TextChoices):
        PARTNER = "partner", _("Partner (manages its own endpoints)")
        PUBLISHER = "publisher", _("Publisher (publishes events)")

    PREFIX_LENGTH = 12  # "whk_" + 8 characters, stored in clear to identify the token

    partner = models.ForeignKey(
        Partner,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        verbose_name=_("partner"),
    )
    name = models.CharField(max_length=100, blank=True, verbose_name=_("name"))
    role = models.CharField(max_length=16, choices=Role.choices, verbose_name=_("role"))
    prefix = models.CharField(
        max_length=PREFIX_LENGTH, unique=True, editable=False, verbose_name=_("prefix")
    )
    key_hash = models.CharField(max_length=64, editable=False, verbose_name=_("key hash"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    created_by = models.CharField(max_length=150, blank=True, verbose_name=_("created by"))
    last_used_at = models.DateTimeField(
        null=True, blank=True, editable=False, verbose_name=_("last used at")
    )
    expires_at = models.DateTimeField(null=True, blank=True, verbose_name=_("expires at"))
    revoked_at = models.DateTimeField(null=True, blank=True, verbose_name=_("revoked at"))

    class Meta:
        verbose_name = _("api token")
        verbose_name_plural = _("api tokens")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                name="apitoken_partner_role_has_partner",
                condition=~models.Q(role="partner") | models.Q(partner__isnull=False),
            )
        ]

    def __str__(self):
        return f"{self.prefix}… ({self.get_role_display()})"

    @staticmethod
    def generate() -> tuple[str, str, str]:
        """A new raw token, its visible prefix and its hash."""
        raw = "whk_" + secrets.token_urlsafe(32)
        return raw, raw[: ApiToken.PREFIX_LENGTH], ApiToken.hash(raw)

    @staticmethod
    def hash(raw: str) -> str:
        # The token carries 256 random bits, so a fast hash is enough; nothing to stretch.
        return hashlib.sha256(raw.encode()).hexdigest()

    def clean(self):
        if self.role == self.Role.PARTNER and not self.partner_id:
            raise ValidationError({"partner": _("A partner token needs a partner.")})

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


def default_retry_policy():
    return {}


class Endpoint(models.Model):
    """A partner's receiving URL with how to sign, authenticate and retry to it."""

    class DisabledBy(models.TextChoices):
        MANUAL = "manual", _("Manually")
        AUTO = "auto", _("Automatically (sustained failure)")
        GONE = "gone", _("Receiver answered 410 Gone")

    class SignatureScheme(models.TextChoices):
        HMAC = "hmac", _("HMAC-SHA256 (v1, whsec_ secret)")
        ED25519 = "ed25519", _("ed25519 (v1a, whpk_ public key)")
        BOTH = "both", _("Both (v1 and v1a)")

    public_id = models.CharField(
        max_length=32, unique=True, default=endpoint_id, editable=False, verbose_name=_("public id")
    )
    partner = models.ForeignKey(
        Partner, on_delete=models.CASCADE, related_name="endpoints", verbose_name=_("partner")
    )
    name = models.CharField(max_length=200, verbose_name=_("name"))
    url = models.URLField(max_length=2000, verbose_name=_("URL"))
    description = models.TextField(blank=True, verbose_name=_("description"))

    enabled = models.BooleanField(default=True, verbose_name=_("enabled"))
    disabled_at = models.DateTimeField(null=True, blank=True, verbose_name=_("disabled at"))
    disabled_reason = models.CharField(
        max_length=500, blank=True, verbose_name=_("disabled reason")
    )
    disabled_kind = models.CharField(
        max_length=16, choices=DisabledBy.choices, blank=True, verbose_name=_("disabled kind")
    )
    disabled_by = models.CharField(
        max_length=150,
        blank=True,
        help_text=_("Who switched it off."),
        verbose_name=_("disabled by"),
    )

    signing_secret = EncryptedTextField(editable=False, verbose_name=_("signing secret"))
    # Secrets replaced by a rotation that still sign until they expire:
    # [{"secret": "whsec_…", "expires_at": "<ISO 8601>"}]
    previous_secrets = EncryptedJSONField(
        null=True, blank=True, editable=False, verbose_name=_("previous secrets")
    )
    signature_scheme = models.CharField(
        max_length=8,
        choices=SignatureScheme.choices,
        default=SignatureScheme.HMAC,
        verbose_name=_("signature scheme"),
        help_text=_("How deliveries are signed: v1 (HMAC), v1a (ed25519) or both."),
    )
    # The ed25519 key pair of `v1a` signatures: the secret key (whsk_…) encrypted, the
    # public key partners verify with (whpk_…) in clear. Pairs replaced by a rotation keep
    # signing until they expire:
    # [{"secret_key": "whsk_…", "public_key": "whpk_…", "expires_at": "<ISO 8601>"}]
    signing_key = EncryptedTextField(blank=True, editable=False, verbose_name=_("signing key"))
    public_key = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        verbose_name=_("public key"),
        help_text=_("Verifies the v1a (ed25519) signatures. Not a secret: give it to the partner."),
    )
    previous_keys = EncryptedJSONField(
        null=True, blank=True, editable=False, verbose_name=_("previous keys")
    )
    auth_token = EncryptedTextField(
        blank=True,
        editable=False,
        help_text=_("Sent as Authorization: Bearer <token>."),
        verbose_name=_("auth token"),
    )
    # {name: value}; the values are the partner's credentials (endpoints.header_rules).
    headers = EncryptedJSONField(
        default=dict,
        blank=True,
        help_text=_("Extra request headers. Their values are stored encrypted and shown masked."),
        verbose_name=_("headers"),
    )
    timeout_seconds = models.PositiveSmallIntegerField(
        default=15,
        validators=[MinValueValidator(1), MaxValueValidator(60)],
        verbose_name=_("timeout seconds"),
    )
    retry_policy = models.JSONField(
        default=default_retry_policy, blank=True, verbose_name=_("retry policy")
    )
    rate_limit_per_second = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(10_000)],
        verbose_name=_("rate limit per second"),
    )
    filter = models.JSONField(
        null=True,
        blank=True,
        help_text=_("Payload filter applied to every event type."),
        verbose_name=_("filter"),
    )
    ordered = models.BooleanField(
        default=False,
        help_text=_("Deliver one at a time, in event order (FIFO)."),
        verbose_name=_("ordered"),
    )
    max_in_flight = models.PositiveSmallIntegerField(
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text=_("At most this many requests to this endpoint at once, across all workers."),
        verbose_name=_("max in flight"),
    )
    send_traceparent = models.BooleanField(
        default=False,
        help_text=_(
            "Send a W3C traceparent header with each webhook, so the receiver's traces join "
            "webhookhub's."
        ),
        verbose_name=_("send traceparent"),
    )

    # Endpoint verification (WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION,
    # endpoints.verification): when it answered a challenge or a partner pasted it; the
    # outstanding challenge (its SHA-256 only) and when it was sent.
    verified_at = models.DateTimeField(
        null=True, blank=True, editable=False, verbose_name=_("verified at")
    )
    verification_sent_at = models.DateTimeField(
        null=True, blank=True, editable=False, verbose_name=_("verification sent at")
    )
    verification_challenge_hash = models.CharField(
        max_length=64, blank=True, editable=False, verbose_name=_("verification challenge hash")
    )

    # How delivery to it is going (circuit, failure streak) is deliveries.EndpointHealth
    # (`endpoint.health`): a row of its own, so delivering never locks this one.

    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("endpoint")
        verbose_name_plural = _("endpoints")
        ordering = ["partner__name", "name"]
        indexes = [
            models.Index(fields=["partner", "enabled"]),
        ]
        permissions = [
            ("toggle_endpoint", "Can enable and disable endpoints"),
            ("rotate_credentials", "Can rotate signing secrets and regenerate tokens"),
            ("send_test_event", "Can send test events"),
        ]

    def __str__(self):
        return f"{self.name} ({self.public_id})"

    def __repr__(self):
        return f"<Endpoint {self.public_id} {self.url}>"

    def clean(self):
        validate_endpoint_fields(self)

    @property
    def awaiting_verification(self) -> bool:
        """Its deliveries are held: verification is required and the challenge sent on
        creation, URL change or "verify again" has not been answered. (An endpoint that
        was never sent one — older than the setting — is not held.)"""
        return (
            settings.WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION
            and self.verified_at is None
            and self.verification_sent_at is not None
        )

    def previous_secrets_in_force(self, now: datetime | None = None) -> list[dict]:
        """Rotated-out secrets whose grace period has not ended yet."""
        now = now or timezone.now()
        return [
            old
            for old in self.previous_secrets or []
            if datetime.fromisoformat(old["expires_at"]) > now
        ]

    def active_secrets(self, now: datetime | None = None) -> list[str]:
        """Secrets that sign a delivery sent now: the current one first."""
        return [self.signing_secret] + [
            old["secret"] for old in self.previous_secrets_in_force(now)
        ]

    def previous_keys_in_force(self, now: datetime | None = None) -> list[dict]:
        """Rotated-out ed25519 key pairs whose grace period has not ended yet."""
        now = now or timezone.now()
        return [
            old
            for old in self.previous_keys or []
            if datetime.fromisoformat(old["expires_at"]) > now
        ]

    def signing_credentials(self, now: datetime | None = None) -> tuple[list[str], list[str]]:
        """What signs a delivery sent now, per the scheme: (HMAC secrets for `v1`,
        ed25519 secret keys for `v1a`), the current one of each first."""
        scheme = self.signature_scheme
        hmac_secrets = [] if scheme == self.SignatureScheme.ED25519 else self.active_secrets(now)
        keys = []
        if scheme != self.SignatureScheme.HMAC:
            keys = [self.signing_key] + [
                old["secret_key"] for old in self.previous_keys_in_force(now)
            ]
        return hmac_secrets, keys


def verification_hold(prefix: str = "") -> models.Q | None:
    """The endpoints (`prefix`: the path to them, e.g. "endpoint__") whose deliveries
    are held for verification, as a condition; None while verification is not required."""
    if not settings.WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION:
        return None
    return models.Q(
        **{f"{prefix}verified_at__isnull": True, f"{prefix}verification_sent_at__isnull": False}
    )


class Subscription(models.Model):
    """One event type name or wildcard (`order.*`, `*`) an endpoint receives."""

    endpoint = models.ForeignKey(
        Endpoint, on_delete=models.CASCADE, related_name="subscriptions", verbose_name=_("endpoint")
    )
    event_type = models.CharField(
        max_length=200,
        help_text=_("An event type name, `prefix.*` or `*`."),
        verbose_name=_("event type"),
    )
    filter = models.JSONField(
        null=True, blank=True, help_text=_("Payload filter (optional)."), verbose_name=_("filter")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")
        ordering = ["event_type"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event_type"], name="subscription_unique_per_endpoint"
            )
        ]
        indexes = [models.Index(fields=["event_type"])]

    def __str__(self):
        return self.event_type

    def clean(self):
        validate_subscription_fields(self)
