"""Endpoint representations and inputs. Secrets are write-only or shown once."""

from functools import partial

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deliveries.policy import CircuitState, RetryPolicy
from endpoints import header_rules, validation
from endpoints.models import Endpoint
from webhookhub.api.fields import (
    JSONValueField,
    SafeDateTimeField,
    StrictBooleanField,
    StrictIntegerField,
    StrictSerializer,
    TextField,
    run_rule,
)
from webhookhub.api.schema import nullable_ref, ref

SUBSCRIPTION_SCHEMA = {
    "oneOf": [
        {
            "type": "string",
            "pattern": validation.SUBSCRIPTION_PATTERN.pattern,
            "maxLength": 200,
            "description": "An event type name, `prefix.*` or `*`.",
        },
        {
            "type": "object",
            "description": "An event type name or wildcard with its own payload filter.",
            "required": ["event_type"],
            "additionalProperties": False,
            "properties": {
                "event_type": {
                    "type": "string",
                    "pattern": validation.SUBSCRIPTION_PATTERN.pattern,
                    "maxLength": 200,
                },
                "filter": nullable_ref("Filter"),
            },
        },
    ]
}
MAX_SUBSCRIPTIONS = 100


@extend_schema_field(nullable_ref("Filter"))
class FilterField(JSONValueField):
    """A payload filter (events.filters); `null` for none. Checked with its rules."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        run_rule(validation.validate_filter_field, data)
        return data


@extend_schema_field(ref("RetryPolicy"))
class RetryPolicyField(JSONValueField):
    """The retry policy: what is sent is checked; what is shown is the whole effective
    policy (defaults filled in)."""

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if not isinstance(data, dict):
            raise serializers.ValidationError("Expected a JSON object.")
        run_rule(validation.validate_retry_policy, data)
        return data

    def to_representation(self, value):
        return RetryPolicy.from_dict(value or None).to_dict()


@extend_schema_field(SUBSCRIPTION_SCHEMA)
class SubscriptionField(serializers.Field):
    """`"order.*"`, or `{"event_type": "order.*", "filter": {...}}` for its own filter."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = set(data) - {"event_type", "filter"}
            if unknown or "event_type" not in data:
                raise serializers.ValidationError(
                    'Use a name, or an object {"event_type": ..., "filter": ...}.'
                )
            pattern, spec = data["event_type"], data.get("filter")
        else:
            pattern, spec = data, None
        if not isinstance(pattern, str):
            raise serializers.ValidationError("Expected an event type name or wildcard.")
        run_rule(validation.validate_subscription_pattern, pattern)
        if spec is not None:
            FilterField().run_validation(spec)
            return {"event_type": pattern, "filter": spec}
        return pattern

    def to_representation(self, subscription):
        if subscription.filter:
            return {"event_type": subscription.event_type, "filter": subscription.filter}
        return subscription.event_type


class HeadersField(serializers.DictField):
    """Custom headers to send. A value in its masked form (as GET shows it) is let
    through here; `endpoint_update` puts the stored value back in its place."""

    # Values are checked as they are: no silent trimming of what goes on the wire.
    child = TextField(allow_blank=True, trim_whitespace=False)

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        run_rule(partial(validation.validate_headers, allow_masked=True), data)
        return data


class MaskedHeadersField(serializers.DictField):
    """Custom header names with their values masked: the values are write-only."""

    child = serializers.CharField()

    def to_representation(self, value):
        return header_rules.masked(value)


class EndpointSerializer(serializers.Serializer):
    """An endpoint as partners see it: everything but its secrets."""

    id = serializers.CharField(source="public_id", read_only=True)
    name = serializers.CharField()
    url = serializers.CharField()
    description = serializers.CharField()
    enabled = serializers.BooleanField()
    disabled_at = serializers.DateTimeField(allow_null=True)
    disabled_reason = serializers.CharField(help_text="Why it was switched off (if it is).")
    disabled_kind = serializers.SerializerMethodField(
        help_text="`manual`, `auto` (sustained failure) or `gone` (the receiver said 410)."
    )
    event_types = serializers.SerializerMethodField()
    filter = FilterField(help_text="Payload filter applied to every event type.")
    headers = MaskedHeadersField(
        help_text=_(
            "Extra request headers. Values are write-only: shown as •••• and their last 4 "
            "characters (just •••• when shorter than 12)."
        )
    )
    timeout_seconds = serializers.IntegerField()
    retry_policy = RetryPolicyField()
    rate_limit_per_second = serializers.IntegerField(allow_null=True)
    ordered = serializers.BooleanField()
    max_in_flight = serializers.IntegerField()
    send_traceparent = serializers.BooleanField(
        help_text=_(
            "Whether each webhook carries a W3C `traceparent` header (the attempt's trace "
            "context, when webhookhub traces)."
        )
    )
    signature_scheme = serializers.ChoiceField(
        choices=Endpoint.SignatureScheme.choices,
        help_text=_(
            "`hmac`: v1 signatures with the secret (whsec_). `ed25519`: v1a signatures, "
            "verified with the public key (whpk_, GET …/public-key/). `both`: each delivery "
            "carries both."
        ),
    )
    has_auth_token = serializers.BooleanField(
        help_text="Whether `Authorization: Bearer …` is sent (the token itself is not shown)."
    )
    circuit_state = serializers.ChoiceField(
        choices=CircuitState.choices, source="health.circuit_state"
    )
    consecutive_failures = serializers.IntegerField(source="health.consecutive_failures")
    failing_since = serializers.DateTimeField(allow_null=True, source="health.failing_since")
    verified_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When it answered its verification challenge (or the challenge was "
        "pasted); endpoints older than verification count as verified since the upgrade.",
    )
    verification_sent_at = serializers.DateTimeField(
        allow_null=True, help_text="When its latest verification challenge was sent."
    )
    awaiting_verification = serializers.BooleanField(
        help_text="Deliveries are held until it answers its challenge "
        "(`WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION`)."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field(
        {"type": "string", "enum": list(Endpoint.DisabledBy.values), "nullable": True}
    )
    def get_disabled_kind(self, endpoint) -> str | None:
        return endpoint.disabled_kind or None

    @extend_schema_field({"type": "array", "items": SUBSCRIPTION_SCHEMA})
    def get_event_types(self, endpoint):
        field = SubscriptionField()
        return [field.to_representation(s) for s in endpoint.subscriptions.all()]


class EndpointCreatedSerializer(EndpointSerializer):
    secret = serializers.CharField(
        source="new_secret", help_text="The signing secret (`whsec_…`). Shown only now."
    )


class EndpointWriteSerializer(StrictSerializer):
    """Fields a partner may set on its endpoint. PATCH sends any of them."""

    name = TextField(max_length=200)
    url = TextField(max_length=2000, help_text="http(s) URL; private addresses are refused.")
    description = TextField(allow_blank=True, required=False, max_length=5000)
    event_types = serializers.ListField(
        child=SubscriptionField(),
        min_length=1,
        max_length=MAX_SUBSCRIPTIONS,
        required=False,
        help_text='Event type names and wildcards (`order.*`, `*`). Default: `["*"]`.',
    )
    filter = FilterField(required=False)
    headers = HeadersField(
        required=False,
        help_text=_(
            "Extra request headers; replaces them all. A value sent back masked, as it is "
            "shown, keeps the current value of that header."
        ),
    )
    timeout_seconds = StrictIntegerField(min_value=1, max_value=60, required=False)
    retry_policy = RetryPolicyField(required=False, allow_null=True)
    rate_limit_per_second = StrictIntegerField(
        min_value=1, max_value=10_000, required=False, allow_null=True
    )
    ordered = StrictBooleanField(required=False)
    max_in_flight = StrictIntegerField(min_value=1, max_value=100, required=False)
    send_traceparent = StrictBooleanField(
        required=False,
        help_text=_(
            "Send a W3C `traceparent` header with each webhook (default false), so your "
            "traces join webhookhub's."
        ),
    )
    signature_scheme = serializers.ChoiceField(
        choices=Endpoint.SignatureScheme.choices,
        required=False,
        error_messages={
            "invalid_choice": _('"{input}" is not a signature scheme: use hmac, ed25519 or both.')
        },
        help_text=_(
            "`hmac` (default), `ed25519` or `both`. To switch without losing deliveries: "
            "`both`, verify v1a on your side, then `ed25519`."
        ),
    )
    auth_token = TextField(
        allow_blank=True,
        trim_whitespace=False,
        required=False,
        max_length=header_rules.MAX_TOKEN_LENGTH,
        write_only=True,
        help_text="Sent as `Authorization: Bearer <token>`; empty to stop sending one.",
    )

    def validate_url(self, value):
        run_rule(validation.validate_url, value)
        return value

    def validate_retry_policy(self, value):
        return value or {}

    def validate_auth_token(self, value):
        run_rule(validation.validate_auth_token, value)
        return value


class EndpointUpdateSerializer(EndpointWriteSerializer):
    enabled = StrictBooleanField(
        required=False, help_text="Switch the endpoint on or off (like enable/disable)."
    )


class EndpointDisableSerializer(StrictSerializer):
    reason = TextField(required=False, allow_blank=True, max_length=500)
    cancel_waiting = StrictBooleanField(
        required=False,
        default=False,
        help_text="Cancel the deliveries waiting for it instead of holding them.",
    )


class RotateSecretSerializer(StrictSerializer):
    grace_seconds = StrictIntegerField(
        required=False,
        min_value=0,
        max_value=7 * 86400,
        default=86400,
        help_text="How long the old secret keeps signing beside the new one (default 24 h).",
    )


class RotatedSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="The new signing secret. Shown only now.")
    previous_secret_expires_at = serializers.DateTimeField(
        allow_null=True, help_text="Until when the old secret also signs."
    )


class PreviousPublicKeySerializer(serializers.Serializer):
    public_key = serializers.CharField(help_text=_("A rotated-out public key (whpk_…)."))
    expires_at = serializers.DateTimeField(help_text=_("Until when its secret key also signs."))


class PublicKeySerializer(serializers.Serializer):
    scheme = serializers.ChoiceField(
        choices=Endpoint.SignatureScheme.choices,
        help_text=_("The endpoint's signature scheme: v1a signatures go out unless `hmac`."),
    )
    public_key = serializers.CharField(
        allow_null=True,
        help_text=_("Verifies the v1a (ed25519) signatures: `whpk_` + base64 of 32 bytes."),
    )
    previous_public_keys = PreviousPublicKeySerializer(
        many=True,
        help_text=_("Keys rotated out that still sign beside the current one (grace period)."),
    )


class RotateKeySerializer(StrictSerializer):
    grace_seconds = StrictIntegerField(
        required=False,
        min_value=0,
        max_value=7 * 86400,
        default=86400,
        help_text=_("How long the old key pair keeps signing beside the new one (default 24 h)."),
    )


class RotatedKeySerializer(serializers.Serializer):
    public_key = serializers.CharField(help_text=_("The new public key (whpk_…)."))
    previous_public_key_expires_at = serializers.DateTimeField(
        allow_null=True, help_text=_("Until when the old key pair also signs.")
    )


class AuthTokenSerializer(serializers.Serializer):
    auth_token = serializers.CharField(help_text="The new bearer token. Shown only now.")


class VerifySerializer(StrictSerializer):
    challenge = TextField(
        max_length=200,
        help_text="The `data.challenge` of the latest `webhookhub.endpoint.verification` "
        "request your endpoint received; any other value is refused with a 400.",
    )


class RecoverSerializer(StrictSerializer):
    since = SafeDateTimeField(help_text="Re-send what failed for this endpoint since then.")


class QueuedSerializer(serializers.Serializer):
    queued = serializers.IntegerField(help_text="Deliveries queued to be sent.")
