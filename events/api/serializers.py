"""Events and the event type catalog: what is published and what it is published as."""

from django.conf import settings
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deliveries.models import DeliveryStatus
from events.models import EVENT_TYPE_NAME, SchemaMode
from events.services import MAX_IDEMPOTENCY_KEY_LENGTH, MAX_SOURCE_LENGTH, MAX_TAGS
from webhookhub.api.fields import (
    JSONObjectField,
    JSONValueField,
    SafeDateTimeField,
    StrictSerializer,
    TextField,
)

FREE_OBJECT = {"type": "object", "additionalProperties": True}


class EventDeliverySerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    endpoint = serializers.CharField(source="endpoint.public_id")
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    attempt_count = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True)


class SchemaProblemSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="JSON path from the payload, e.g. `data.amount`.")
    message = serializers.CharField(help_text="The rule it broke, e.g. `'x' is not of type …`.")


class EventSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id", help_text="`evt_…`, sortable by time.")
    type = serializers.CharField(source="event_type.name")
    partner = serializers.SerializerMethodField(help_text="`prt_…`, or null for a broadcast.")
    source = serializers.CharField()
    data = serializers.SerializerMethodField()
    idempotency_key = serializers.CharField(allow_null=True)
    tags = serializers.ListField(child=serializers.CharField())
    occurred_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    deliveries_count = serializers.IntegerField(
        help_text="Deliveries made for it (for a partner token: to its own endpoints)."
    )
    schema_version = serializers.IntegerField(
        allow_null=True,
        help_text="The event type's schema version `data` was checked against; null when "
        "the type's `schema_mode` was `off`.",
    )
    schema_problems = SchemaProblemSerializer(
        many=True,
        help_text="`warn` mode: where `data` did not validate (the first few); empty when "
        "it did or was not checked.",
    )
    expunged_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When the payload was erased (`DELETE …/payload/`): `data` is then "
        '`{"expunged": true}` and the event cannot be sent again. null: not erased.',
    )

    @extend_schema_field({"type": "string", "nullable": True})
    def get_partner(self, event) -> str | None:
        return event.partner.public_id if event.partner_id else None

    @extend_schema_field(FREE_OBJECT)
    def get_data(self, event):
        return event.payload


class EventDetailSerializer(EventSerializer):
    deliveries = EventDeliverySerializer(many=True, source="scoped_deliveries")


@extend_schema_field(FREE_OBJECT)
class PayloadField(JSONObjectField):
    """An event's payload. Only its shape is checked here: `publish()` walks it with the
    same checker (webhookhub.json_values) before writing, and its ValidationError comes
    back as the same 400 on `data` — one walk per request, not two (a 200 KB payload
    costs about 6 ms to walk)."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(_("Expected a JSON object."))
        return data


class EventPublishSerializer(StrictSerializer):
    type = TextField(max_length=200, help_text="A catalog name, e.g. `order.paid`.")
    data = PayloadField(
        help_text="The payload: a JSON object. If the type's `schema_mode` is `enforce`, "
        "it must validate against the type's schema (a 400 names the JSON path and rule)."
    )
    partner = TextField(
        required=False,
        allow_null=True,
        max_length=40,
        help_text="`prt_…`: only this partner's endpoints receive it. Omit for a broadcast.",
    )
    source = TextField(required=False, allow_blank=True, max_length=MAX_SOURCE_LENGTH)
    idempotency_key = TextField(
        required=False,
        allow_null=True,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        help_text="A repeated key returns the first event (200) and creates nothing. The "
        "`Idempotency-Key` header does the same (if both are sent they must agree). Not "
        "only spaces.",
    )
    occurred_at = SafeDateTimeField(
        required=False, help_text="Default: now. Years 1 to 9998 once in UTC."
    )
    tags = serializers.ListField(
        child=TextField(min_length=1, max_length=100), max_length=MAX_TAGS, required=False
    )


class EventBatchSerializer(serializers.ListSerializer):
    child = EventPublishSerializer()

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_empty", False)
        kwargs.setdefault("max_length", settings.WEBHOOKHUB_API_MAX_BATCH_EVENTS)
        super().__init__(*args, **kwargs)


class EventBatchResultSerializer(serializers.Serializer):
    events = EventSerializer(many=True, help_text="In the order they were sent.")
    created = serializers.IntegerField(help_text="How many are new (others were repeats).")


class ExpungedSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The event (`evt_…`).")
    expunged_at = serializers.DateTimeField(help_text="When its payload was erased.")
    deliveries_cancelled = serializers.IntegerField(
        help_text="Deliveries that were still waiting and are cancelled (0 on a repeat)."
    )
    attempts_emptied = serializers.IntegerField(
        help_text="Attempts whose response body and headers were emptied."
    )


class ReplaySerializer(StrictSerializer):
    endpoint = TextField(
        required=False,
        allow_null=True,
        max_length=40,
        help_text="`ep_…`: replay to this endpoint only. Omit for every subscribed endpoint.",
    )


class EventTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    example = JSONValueField(
        allow_null=True, help_text="An example `data` payload (it validates against `schema`)."
    )
    schema = JSONValueField(allow_null=True, help_text="JSON Schema (Draft 2020-12) of `data`.")
    schema_mode = serializers.ChoiceField(
        choices=SchemaMode.choices,
        help_text="`off`: informative; `warn`: events that do not validate are accepted and "
        "flagged (`schema_problems`); `enforce`: they are refused with a 400.",
    )
    schema_version = serializers.IntegerField(
        help_text="Goes up by one each time the schema changes (0: never had one)."
    )
    archived = serializers.BooleanField(source="is_archived")
    archived_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


NAME_RULE = _("Use lower-case words separated by dots, e.g. order.paid.")


class EventTypeCreateSerializer(StrictSerializer):
    name = TextField(
        max_length=200,
        # Also publishes the pattern in the schema.
        validators=[RegexValidator(EVENT_TYPE_NAME, message=NAME_RULE)],
        help_text="Lower-case words separated by dots, e.g. `order.paid`; unique, and "
        "`webhookhub.…` names are reserved.",
    )
    description = TextField(required=False, allow_blank=True, max_length=5000)
    example = JSONValueField(
        required=False, allow_null=True, help_text="Must validate against `schema` if both."
    )
    schema = JSONValueField(
        required=False,
        allow_null=True,
        help_text="A JSON Schema (Draft 2020-12); references only inside it (`#/$defs/…`).",
    )
    schema_mode = serializers.ChoiceField(
        choices=SchemaMode.choices,
        required=False,
        help_text="Default `off`; `warn` and `enforce` need a `schema`.",
    )

    def validate_name(self, value):
        if not EVENT_TYPE_NAME.fullmatch(value):  # `$` alone would take a final newline
            raise serializers.ValidationError(NAME_RULE)
        return value


class RouteSerializer(serializers.Serializer):
    """One endpoint the event could have gone to, and what happened there."""

    endpoint = serializers.CharField(help_text="`ep_…`")
    endpoint_name = serializers.CharField()
    partner = serializers.CharField(help_text="`prt_…`")
    outcome = serializers.ChoiceField(
        choices=[
            ("delivery", "It got a delivery (see `status` and `reason`)."),
            ("not_subscribed", "Not subscribed to the event's type."),
            ("filtered", "A payload filter did not match (`reason` names the condition)."),
            ("endpoint_off", "The endpoint was switched off when it was published."),
            ("partner_inactive", "The partner is inactive."),
            ("created_later", "The endpoint was registered after the event."),
            ("other_target", "A test event for another endpoint."),
            ("unknown", "It matches now; its settings were different at publish time."),
        ]
    )
    reason = serializers.CharField(help_text="Why, in one sentence (in the request's language).")
    delivery = serializers.CharField(allow_null=True, help_text="`dlv_…` when there is one.")
    status = serializers.CharField(allow_null=True)


class RoutingSerializer(serializers.Serializer):
    event = serializers.CharField()
    event_type = serializers.CharField()
    partner = serializers.CharField(allow_null=True, help_text="null: a broadcast.")
    routes = RouteSerializer(many=True)
