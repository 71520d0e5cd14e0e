"""`/api/v1/events/` (publish, batch, list, detail, replay) and `/api/v1/event-types/`."""

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Prefetch, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from deliveries.erasure import event_expunge
from deliveries.explain import event_routing
from deliveries.models import Delivery
from deliveries.services import event_replay
from endpoints.api.serializers import QueuedSerializer
from endpoints.models import Endpoint
from events.api.filters import EventFilter, EventTypeFilter
from events.api.serializers import (
    EventBatchResultSerializer,
    EventBatchSerializer,
    EventDetailSerializer,
    EventPublishSerializer,
    EventSerializer,
    EventTypeCreateSerializer,
    EventTypeSerializer,
    ExpungedSerializer,
    ReplaySerializer,
    RoutingSerializer,
)
from events.catalog import event_type_archive, event_type_create, event_type_unarchive
from events.models import Event, EventType
from events.services import MAX_IDEMPOTENCY_KEY_LENGTH, event_publish, events_publish_batch
from webhookhub.api.exceptions import Conflict
from webhookhub.api.pagination import NameCursorPagination
from webhookhub.api.permissions import ANY_ROLE, PUBLISHER
from webhookhub.api.schema import ErrorSerializer
from webhookhub.api.scoping import ScopedQuerysetMixin, scope_queryset
from webhookhub.api.views import ApiViewMixin

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH},
    OpenApiParameter.HEADER,
    required=False,
    description="Same as the body's `idempotency_key` (they must agree if both are sent); "
    f"1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters, not only spaces.",
)


@extend_schema_view(
    list=extend_schema(summary="List events"),
    retrieve=extend_schema(summary="Get an event with its deliveries"),
)
@extend_schema(tags=["events"])
class EventViewSet(
    ApiViewMixin,
    ScopedQuerysetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Publisher tokens publish and erase payloads; both roles read (a partner only its
    own events and the broadcasts it received) and replay."""

    roles = {"create": {PUBLISHER}, "batch": {PUBLISHER}, "payload": {PUBLISHER}, "*": ANY_ROLE}
    throttle_scopes = {"create": "publish", "batch": "publish"}
    filterset_class = EventFilter

    @property
    def max_body_bytes(self) -> int:
        """Read by ApiViewMixin (Content-Length, before the body) and the parser."""
        if getattr(self, "action", None) == "batch":
            return settings.WEBHOOKHUB_API_MAX_BATCH_BYTES
        return settings.WEBHOOKHUB_MAX_PAYLOAD_BYTES

    def get_serializer_class(self):
        return EventDetailSerializer if self.action == "retrieve" else EventSerializer

    def base_queryset(self):
        return Event.objects.select_related("event_type", "partner").defer("body")

    def get_queryset(self):
        queryset = super().get_queryset()
        if getattr(self, "swagger_fake_view", False):
            return queryset
        # Counted per row shown (a subquery, not a GROUP BY over every event).
        deliveries = scope_queryset(Delivery.objects.all(), self.request.user)
        count = (
            deliveries.filter(event=OuterRef("pk"))
            .order_by()
            .values("event")
            .annotate(n=Count("pk"))
            .values("n")
        )
        queryset = queryset.annotate(
            deliveries_count=Coalesce(Subquery(count, output_field=IntegerField()), Value(0))
        )
        if self.action == "retrieve":
            shown = deliveries.select_related("endpoint").only(
                "public_id",
                "event_id",
                "status",
                "attempt_count",
                "last_status_code",
                "last_attempt_at",
                "next_attempt_at",
                "endpoint__public_id",
            )
            queryset = queryset.prefetch_related(
                Prefetch("deliveries", queryset=shown.order_by("pk"), to_attr="scoped_deliveries")
            )
        return queryset

    @extend_schema(
        summary="Publish an event",
        description="Records the event and one delivery per subscribed endpoint (only the "
        "given partner's endpoints, or every subscribed endpoint for a broadcast). A "
        "repeated idempotency key answers 200 with the first event and creates nothing.",
        parameters=[IDEMPOTENCY_HEADER],
        request=EventPublishSerializer,
        examples=[
            OpenApiExample(
                "An order was paid",
                request_only=True,
                value={
                    "type": "order.paid",
                    "data": {"order": {"id": 1234, "total": 99.5, "currency": "EUR"}},
                    "source": "shop",
                    "idempotency_key": "order-1234-paid",
                    "tags": ["eu"],
                },
            )
        ],
        responses={
            201: EventSerializer,
            200: OpenApiResponse(EventSerializer, description="Idempotent repeat."),
        },
    )
    def create(self, request):
        data = self.validated(EventPublishSerializer)
        header_key = request.headers.get("Idempotency-Key")
        body_key = data.get("idempotency_key")
        if header_key is not None and body_key is not None and header_key != body_key:
            raise ValidationError({"idempotency_key": ["Differs from the Idempotency-Key header."]})
        event, created = event_publish(
            data["type"],
            data["data"],
            partner=data.get("partner"),
            source=data.get("source", ""),
            idempotency_key=body_key if body_key is not None else header_key,
            occurred_at=data.get("occurred_at"),
            tags=data.get("tags", ()),
            trigger_by=request.user.actor,
        )
        return Response(
            EventSerializer(event).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        summary="Publish several events, all or nothing",
        description="A JSON array of events as for `POST /events/`. If one is refused, none "
        "is recorded and `errors` names it by index (`3.type`).",
        request=EventBatchSerializer,
        responses={
            201: EventBatchResultSerializer,
            200: OpenApiResponse(EventBatchResultSerializer, description="All were repeats."),
        },
    )
    @action(detail=False, methods=["post"])
    def batch(self, request):
        serializer = EventBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        results = events_publish_batch(serializer.validated_data, trigger_by=request.user.actor)
        created = sum(1 for _, new in results if new)
        body = {"events": [event for event, _ in results], "created": created}
        return Response(
            EventBatchResultSerializer(body).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        summary="Send an event again",
        description="To one endpoint (`endpoint`) or to every subscribed endpoint; a partner "
        "token replays to its own endpoints only. Same `webhook-id` as before.",
        request=ReplaySerializer,
        responses={202: OpenApiResponse(QueuedSerializer, description="Queued.")},
    )
    @action(detail=True, methods=["post"])
    def replay(self, request, id=None):
        event = self.get_object()
        data = self.validated(ReplaySerializer)
        client = request.user
        endpoint = None
        if data.get("endpoint"):
            endpoint = (
                scope_queryset(Endpoint.objects.only("pk", "partner_id"), client)
                .filter(public_id=data["endpoint"])
                .first()
            )
            if endpoint is None:
                raise ValidationError({"endpoint": [f"Unknown endpoint {data['endpoint']!r}."]})
        queued = event_replay(event, endpoint=endpoint, partner=client.partner, by=client.actor)
        return Response(QueuedSerializer({"queued": queued}).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Erase an event's payload",
        description="Replaces the payload, the stored body and every attempt's response "
        'body and headers with a tombstone (`data` becomes `{"expunged": true}`); '
        "keeps the ids, type, statuses, timings and the audit trail. Deliveries still "
        "waiting are cancelled; the event can no longer be replayed or retried (409). "
        "Idempotent: a repeat answers 200 again. 409 while one of its deliveries is "
        "being sent (a few seconds at most): try again.",
        request=None,
        responses={
            200: ExpungedSerializer,
            409: OpenApiResponse(ErrorSerializer, description="A delivery is in flight."),
        },
    )
    @action(detail=True, methods=["delete"])
    def payload(self, request, id=None):
        event = self.get_object()
        self.validated(None)
        result = event_expunge(event, by=request.user.actor)
        if result.busy:
            raise Conflict(
                _(
                    "A delivery of %(event)s is being sent right now; erase its payload "
                    "again in a few seconds."
                )
                % {"event": event.public_id}
            )
        event.refresh_from_db(fields=["expunged_at"])
        body = {
            "id": event.public_id,
            "expunged_at": event.expunged_at,
            "deliveries_cancelled": result.deliveries_cancelled,
            "attempts_emptied": result.attempts,
        }
        return Response(ExpungedSerializer(body).data)

    @extend_schema(
        summary="Where the event went, and why not elsewhere",
        description="For every endpoint the event could have gone to (the event's "
        "partner's, or every endpoint for a broadcast; a partner token sees only its own): "
        "its delivery and why it is in its state, or why there is none — not subscribed "
        "to the type, a filter that did not match (which condition, with the value "
        "found), the endpoint off at publish time, the partner inactive.",
        responses={200: RoutingSerializer},
    )
    @action(detail=True, methods=["get"])
    def routing(self, request, id=None):
        event = self.get_object()
        routes = event_routing(event, partner=request.user.partner)
        data = {
            "event": event.public_id,
            "event_type": event.event_type.name,
            "partner": event.partner.public_id if event.partner_id else None,
            "routes": [route.as_dict() for route in routes],
        }
        return Response(RoutingSerializer(data).data)


@extend_schema_view(
    list=extend_schema(summary="List the event type catalog"),
    retrieve=extend_schema(summary="Get an event type"),
)
@extend_schema(tags=["event types"])
class EventTypeViewSet(
    ApiViewMixin,
    ScopedQuerysetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """The catalog, read by everyone; a publisher token adds and archives names."""

    roles = {"create": {PUBLISHER}, "archive": {PUBLISHER}, "unarchive": {PUBLISHER}, "*": ANY_ROLE}
    serializer_class = EventTypeSerializer
    filterset_class = EventTypeFilter
    pagination_class = NameCursorPagination
    lookup_field = "name"
    lookup_url_kwarg = "name"
    lookup_value_regex = r"[a-z0-9_.\-]{1,200}"

    def base_queryset(self):
        return EventType.objects.all()

    @extend_schema(
        summary="Add an event type",
        request=EventTypeCreateSerializer,
        responses={201: EventTypeSerializer},
    )
    def create(self, request):
        data = self.validated(EventTypeCreateSerializer)
        event_type = event_type_create(**data, by=request.user.actor)
        return Response(EventTypeSerializer(event_type).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Archive an event type",
        description="Events of an archived type are refused; its history stays.",
        request=None,
        responses={200: EventTypeSerializer},
    )
    @action(detail=True, methods=["post"])
    def archive(self, request, name=None):
        event_type = self.get_object()
        self.validated(None)
        event_type_archive(event_type, by=request.user.actor)
        return Response(EventTypeSerializer(event_type).data)

    @extend_schema(
        summary="Restore an archived event type", request=None, responses={200: EventTypeSerializer}
    )
    @action(detail=True, methods=["post"])
    def unarchive(self, request, name=None):
        event_type = self.get_object()
        self.validated(None)
        event_type_unarchive(event_type, by=request.user.actor)
        return Response(EventTypeSerializer(event_type).data)
