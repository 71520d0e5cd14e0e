"""`/api/v1/deliveries/`: a partner's deliveries, their attempts, and retry."""

from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from deliveries.api.filters import DeliveryFilter
from deliveries.api.serializers import DeliveryDetailSerializer, DeliverySerializer
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.services import delivery_retry_now
from webhookhub.api.exceptions import Conflict
from webhookhub.api.permissions import PARTNER
from webhookhub.api.schema import ErrorSerializer
from webhookhub.api.scoping import ScopedQuerysetMixin
from webhookhub.api.views import ApiViewMixin

# Never loaded for these pages: secrets (decrypting them is slow and pointless here),
# and event bodies (the event resource shows the payload).
DEFERRED = (
    "endpoint__signing_secret",
    "endpoint__previous_secrets",
    "endpoint__signing_key",
    "endpoint__previous_keys",
    "endpoint__auth_token",
    "endpoint__headers",
    "endpoint__filter",
    "endpoint__retry_policy",
    "event__body",
    "event__payload",
)


@extend_schema_view(
    list=extend_schema(summary="List your deliveries"),
    retrieve=extend_schema(summary="Get a delivery with its attempts"),
)
@extend_schema(tags=["deliveries"])
class DeliveryViewSet(
    ApiViewMixin,
    ScopedQuerysetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """A partner's deliveries (one event to one endpoint) and the attempts made."""

    roles = {"*": {PARTNER}}
    filterset_class = DeliveryFilter

    def get_serializer_class(self):
        return DeliveryDetailSerializer if self.action == "retrieve" else DeliverySerializer

    def base_queryset(self):
        queryset = Delivery.objects.select_related("event__event_type", "endpoint").defer(*DEFERRED)
        if self.action == "retrieve":
            attempts = DeliveryAttempt.objects.order_by("number")
            queryset = queryset.prefetch_related(Prefetch("attempts", queryset=attempts))
        return queryset

    @extend_schema(
        summary="Retry a delivery now",
        description="Sends a failed, dead, cancelled or waiting delivery again at once (same "
        "`webhook-id`). A delivery in flight or already received is a 409: replay the "
        "event to send it again.",
        request=None,
        responses={
            202: DeliverySerializer,
            409: OpenApiResponse(ErrorSerializer, description="In flight or already received."),
        },
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, id=None):
        delivery = self.get_object()
        self.validated(None)
        if not delivery_retry_now(delivery, by=request.user.actor):
            raise Conflict(
                f"Delivery {delivery.public_id} is {delivery.status}: only a failed, dead, "
                "cancelled or waiting delivery can be retried (replay the event instead)."
            )
        delivery = self.get_queryset().get(pk=delivery.pk)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
