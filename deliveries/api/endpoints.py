"""`/api/v1/endpoints/` as the router serves it: the endpoint resource of
endpoints/api/views.py plus the actions that are delivery work: a test event, re-sending
what failed, a new verification challenge.

They live here because endpoints imports no delivery code; the paths, operation ids and
tags are the same as if the base view set declared them.
"""

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from deliveries.api.serializers import (
    TestQueuedSerializer,
    TestResultSerializer,
    VerificationSentSerializer,
)
from deliveries.selectors import delivery_test_attempt
from deliveries.services import endpoint_recover, endpoint_test_queue
from deliveries.verification import endpoint_verification_send
from endpoints.api import views
from endpoints.api.serializers import QueuedSerializer, RecoverSerializer


# No docstring on purpose: the schema describes the endpoint operations with the base
# view set's docstring, and a docstring here would replace it.
@extend_schema(tags=["endpoints"])
class EndpointViewSet(views.EndpointViewSet):
    @extend_schema(
        summary="Send a test event",
        description="Queues a signed `webhookhub.test` event for the workers. If the "
        "receiver's answer is in within a short wait (`WEBHOOKHUB_TEST_WAIT_SECONDS`, 1.5 s "
        "by default) the response is 200 with the attempt; otherwise 202 with the delivery "
        "to poll (`GET /api/v1/deliveries/{id}/`). A test goes out even when the endpoint is "
        "off, its circuit open or its rate limit used up; it is sent once and never retried.",
        request=None,
        responses={
            200: TestResultSerializer,
            202: OpenApiResponse(TestQueuedSerializer, description="Queued; poll `url`."),
        },
    )
    @action(detail=True, methods=["post"], url_path="test")
    def send_test(self, request, id=None):
        endpoint = self.get_object()
        self.validated(None)
        delivery = endpoint_test_queue(endpoint, by=request.user.actor)
        attempt = delivery_test_attempt(delivery, wait=settings.WEBHOOKHUB_TEST_WAIT_SECONDS)
        if attempt is not None:
            return Response(TestResultSerializer(attempt).data)
        body = TestQueuedSerializer(delivery, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Re-send what failed since a time",
        request=RecoverSerializer,
        responses={202: OpenApiResponse(QueuedSerializer, description="Queued.")},
    )
    @action(detail=True, methods=["post"])
    def recover(self, request, id=None):
        endpoint = self.get_object()
        data = self.validated(RecoverSerializer)
        queued = endpoint_recover(endpoint, since=data["since"], by=request.user.actor)
        return Response(QueuedSerializer({"queued": queued}).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Verify again (send a new challenge)",
        description="Sends the endpoint a new signed `webhookhub.endpoint.verification` "
        'challenge. It is unverified until it answers 2xx with `{"challenge": "<value>"}` '
        "(or the value is sent to `…/verify/`); while `WEBHOOKHUB_REQUIRE_ENDPOINT_"
        "VERIFICATION` is on its deliveries are held until then. The challenge goes out "
        "like a test: even when the endpoint is off or its circuit open, once, never retried.",
        request=None,
        responses={202: OpenApiResponse(VerificationSentSerializer, description="Sent.")},
    )
    @action(detail=True, methods=["post"])
    def verification(self, request, id=None):
        endpoint = self.get_object()
        self.validated(None)
        delivery = endpoint_verification_send(endpoint, by=request.user.actor)
        body = VerificationSentSerializer({"delivery": delivery, "endpoint": endpoint}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)
