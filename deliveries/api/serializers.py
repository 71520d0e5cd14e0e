"""Deliveries and their attempts as partners see them (credentials already masked)."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deliveries.explain import delivery_reason, delivery_reasons
from deliveries.models import DeliveryStatus, Trigger


class AttemptSerializer(serializers.Serializer):
    """One HTTP try: what was sent (secrets masked) and what came back."""

    number = serializers.IntegerField()
    trigger = serializers.ChoiceField(choices=Trigger.choices)
    started_at = serializers.DateTimeField()
    duration_ms = serializers.IntegerField()
    request_url = serializers.CharField()
    request_headers = serializers.DictField(child=serializers.CharField())
    response_status_code = serializers.IntegerField(allow_null=True)
    response_headers = serializers.DictField(child=serializers.CharField())
    response_body = serializers.CharField(help_text="Kept up to 20 KB.")
    response_body_truncated = serializers.BooleanField()
    error_kind = serializers.SerializerMethodField(
        help_text="Why no response counted: timeout, connection, refused_address, …"
    )
    error_message = serializers.CharField()
    succeeded = serializers.BooleanField()

    @extend_schema_field({"type": "string", "nullable": True})
    def get_error_kind(self, attempt) -> str | None:
        return attempt.error_kind or None


class ReasonSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="Stable: delivered, in_flight, dead, cancelled, held_endpoint_off, "
        "held_partner_inactive, waiting_circuit_open, waiting_probe, queued_behind, "
        "waiting_in_flight_cap, waiting_rate_limit, retry_scheduled, scheduled, due, "
        "no_worker, held."
    )
    text = serializers.CharField(help_text="Why, in one sentence (in the request's language).")
    short = serializers.CharField(help_text="A few words, for a status column.")


class DeliveryListSerializer(serializers.ListSerializer):
    """Explains a whole page at once (a fixed number of queries, see deliveries.explain)."""

    def to_representation(self, data):
        items = list(data.all() if hasattr(data, "all") else data)
        root = self.root
        known = getattr(root, "_context", None)
        if known is not None:
            known.setdefault("delivery_reasons", {}).update(delivery_reasons(items))
        return super().to_representation(items)


class DeliverySerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    event = serializers.CharField(source="event.public_id", help_text="The event (`evt_…`).")
    event_type = serializers.CharField(source="event.event_type.name")
    endpoint = serializers.CharField(source="endpoint.public_id", help_text="`ep_…`")
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    attempt_count = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(
        allow_null=True, help_text="When it is due (null when not waiting, or held)."
    )
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.SerializerMethodField(help_text="Why it is in this state now.")

    class Meta:
        list_serializer_class = DeliveryListSerializer

    @extend_schema_field(ReasonSerializer)
    def get_reason(self, delivery) -> dict:
        reasons = self.context.get("delivery_reasons") or {}
        reason = reasons.get(delivery.pk) or delivery_reason(delivery)
        return reason.as_dict()


class DeliveryDetailSerializer(DeliverySerializer):
    attempts = AttemptSerializer(many=True, help_text="Oldest first.")


class TestResultSerializer(serializers.Serializer):
    """The outcome of `POST /endpoints/{id}/test/`."""

    succeeded = serializers.BooleanField()
    event = serializers.CharField(source="delivery.event.public_id")
    delivery = serializers.CharField(source="delivery.public_id")
    attempt = AttemptSerializer(source="*")


class TestQueuedSerializer(serializers.Serializer):
    """`POST /endpoints/{id}/test/` when the result is not in within the short wait."""

    status = serializers.CharField(
        help_text="The delivery's status now: `pending` until a worker takes it, then "
        "`in_flight`, then `succeeded` or `dead` (a test is never retried)."
    )
    event = serializers.CharField(source="event.public_id")
    delivery = serializers.CharField(source="public_id")
    url = serializers.SerializerMethodField(
        help_text="Poll this delivery: its `attempts` show the result when it is in."
    )

    def get_url(self, delivery) -> str:
        path = reverse("delivery-detail", kwargs={"id": delivery.public_id})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class VerificationSentSerializer(serializers.Serializer):
    """`POST /endpoints/{id}/verification/`: a new challenge is on its way."""

    status = serializers.CharField(
        source="delivery.status",
        help_text="The challenge delivery's status now (`pending` until a worker takes it).",
    )
    event = serializers.CharField(source="delivery.event.public_id")
    delivery = serializers.CharField(source="delivery.public_id")
    verification_sent_at = serializers.DateTimeField(source="endpoint.verification_sent_at")
    awaiting_verification = serializers.BooleanField(source="endpoint.awaiting_verification")
