"""`/api/v1/endpoints/`: a partner's endpoints, their switches and secrets.

The actions that need delivery code (`test`, `recover`, `verification`) are added by the subclass in
deliveries/api/endpoints.py, which is the one the router serves: endpoints imports no
delivery code.
"""

from datetime import datetime, timedelta

from django.db.models import Q
from django.db.models.expressions import ExpressionWrapper
from django.db.models.fields import BooleanField
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from endpoints.api.serializers import (
    AuthTokenSerializer,
    EndpointCreatedSerializer,
    EndpointDisableSerializer,
    EndpointSerializer,
    EndpointUpdateSerializer,
    EndpointWriteSerializer,
    PublicKeySerializer,
    RotatedKeySerializer,
    RotatedSecretSerializer,
    RotateKeySerializer,
    RotateSecretSerializer,
    VerifySerializer,
)
from endpoints.models import Endpoint
from endpoints.services import (
    endpoint_create,
    endpoint_delete,
    endpoint_disable,
    endpoint_enable,
    endpoint_regenerate_token,
    endpoint_rotate_key,
    endpoint_rotate_secret,
    endpoint_update,
)
from endpoints.verification import endpoint_verify
from webhookhub.api.permissions import PARTNER
from webhookhub.api.scoping import ScopedQuerysetMixin
from webhookhub.api.views import ApiViewMixin

SECRET_FIELDS = (
    "signing_secret",
    "previous_secrets",
    "signing_key",
    "previous_keys",
    "auth_token",
    "verification_challenge_hash",
)


@extend_schema_view(
    list=extend_schema(summary="List your endpoints"),
    retrieve=extend_schema(summary="Get an endpoint"),
    destroy=extend_schema(
        summary="Delete an endpoint",
        description="Deletes it with its subscriptions, deliveries and attempts.",
    ),
)
@extend_schema(tags=["endpoints"])
class EndpointViewSet(
    ApiViewMixin,
    ScopedQuerysetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """A partner's endpoints: where its webhooks go, how they are signed and retried."""

    roles = {"*": {PARTNER}}
    serializer_class = EndpointSerializer

    def base_queryset(self):
        return (
            Endpoint.objects.defer(*SECRET_FIELDS)
            .annotate(
                has_auth_token=ExpressionWrapper(~Q(auth_token=""), output_field=BooleanField())
            )
            .select_related("health")
            .prefetch_related("subscriptions")
        )

    @extend_schema(
        summary="Create an endpoint",
        description="The response carries the signing secret (`secret`): it is shown only once.",
        request=EndpointWriteSerializer,
        responses={201: EndpointCreatedSerializer},
        examples=[
            OpenApiExample(
                "Orders over 100 to one URL",
                request_only=True,
                value={
                    "name": "orders",
                    "url": "https://hooks.example.com/webhooks",
                    "event_types": ["order.*"],
                    "filter": {"path": "data.order.total", "op": "gte", "value": 100},
                    "retry_policy": {"strategy": "exponential", "base_delay": 10},
                },
            )
        ],
    )
    def create(self, request):
        data = self.validated(EndpointWriteSerializer)
        client = request.user
        endpoint = endpoint_create(client.partner, by=client.actor, **data)
        created = self.fresh(endpoint)
        created.new_secret = endpoint.signing_secret
        return Response(EndpointCreatedSerializer(created).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change an endpoint",
        description="Send only the fields to change. `event_types` replaces the list.",
        request=EndpointUpdateSerializer,
        responses={200: EndpointSerializer},
    )
    def partial_update(self, request, id=None):
        endpoint = self.get_object()
        data = self.validated(EndpointUpdateSerializer, partial=True)
        endpoint_update(endpoint, by=request.user.actor, **data)
        return Response(EndpointSerializer(self.fresh(endpoint)).data)

    def destroy(self, request, id=None):
        endpoint_delete(self.get_object(), by=request.user.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Switch an endpoint on", request=None, responses={200: EndpointSerializer}
    )
    @action(detail=True, methods=["post"])
    def enable(self, request, id=None):
        endpoint = self.get_object()
        self.validated(None)
        endpoint_enable(endpoint, by=request.user.actor)
        return Response(EndpointSerializer(self.fresh(endpoint)).data)

    @extend_schema(
        summary="Switch an endpoint off",
        description="Deliveries wait (or are cancelled with `cancel_waiting`) until it is "
        "switched on again.",
        request=EndpointDisableSerializer,
        responses={200: EndpointSerializer},
    )
    @action(detail=True, methods=["post"])
    def disable(self, request, id=None):
        endpoint = self.get_object()
        data = self.validated(EndpointDisableSerializer)
        endpoint_disable(
            endpoint,
            by=request.user.actor,
            reason=data.get("reason") or f"switched off by {request.user.actor}",
            cancel_waiting=data["cancel_waiting"],
        )
        return Response(EndpointSerializer(self.fresh(endpoint)).data)

    @extend_schema(
        summary="Rotate the signing secret",
        description="Returns the new secret (shown only now). The old one keeps signing "
        "beside it for `grace_seconds` so receivers can switch without losing deliveries.",
        request=RotateSecretSerializer,
        responses={200: RotatedSecretSerializer},
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, id=None):
        endpoint = self.get_object()
        data = self.validated(RotateSecretSerializer)
        secret = endpoint_rotate_secret(
            endpoint, by=request.user.actor, grace=timedelta(seconds=data["grace_seconds"])
        )
        endpoint.refresh_from_db(fields=["previous_secrets"])
        previous = (endpoint.previous_secrets or [{}])[0].get("expires_at")
        previous = datetime.fromisoformat(previous) if previous else None
        body = {"secret": secret, "previous_secret_expires_at": previous}
        return Response(RotatedSecretSerializer(body).data)

    @extend_schema(
        summary="Get the public key (v1a)",
        description="The ed25519 public key (`whpk_…`) that verifies this endpoint's `v1a` "
        "signatures, with the rotated-out keys that still sign during their grace period. "
        "Not a secret.",
        responses={200: PublicKeySerializer},
    )
    @action(detail=True, methods=["get"], url_path="public-key")
    def public_key(self, request, id=None):
        endpoint = self.get_object()
        body = {
            "scheme": endpoint.signature_scheme,
            "public_key": endpoint.public_key or None,
            "previous_public_keys": [
                {
                    "public_key": old["public_key"],
                    "expires_at": datetime.fromisoformat(old["expires_at"]),
                }
                for old in endpoint.previous_keys_in_force()
            ],
        }
        return Response(PublicKeySerializer(body).data)

    @extend_schema(
        summary="Rotate the key pair (v1a)",
        description="A new ed25519 key pair at once; returns its public key. The old secret "
        "key keeps signing beside it for `grace_seconds`, so receivers can switch to the new "
        "public key without losing deliveries.",
        request=RotateKeySerializer,
        responses={200: RotatedKeySerializer},
    )
    @action(detail=True, methods=["post"], url_path="rotate-key")
    def rotate_key(self, request, id=None):
        endpoint = self.get_object()
        data = self.validated(RotateKeySerializer)
        public_key = endpoint_rotate_key(
            endpoint, by=request.user.actor, grace=timedelta(seconds=data["grace_seconds"])
        )
        endpoint.refresh_from_db(fields=["previous_keys"])
        previous = (endpoint.previous_keys or [{}])[0].get("expires_at")
        previous = datetime.fromisoformat(previous) if previous else None
        body = {"public_key": public_key, "previous_public_key_expires_at": previous}
        return Response(RotatedKeySerializer(body).data)

    @extend_schema(
        summary="Regenerate the bearer token",
        description="Replaces the token sent as `Authorization: Bearer …` at once; returns "
        "it (shown only now).",
        request=None,
        responses={200: AuthTokenSerializer},
    )
    @action(detail=True, methods=["post"], url_path="regenerate-token")
    def regenerate_token(self, request, id=None):
        endpoint = self.get_object()
        self.validated(None)
        token = endpoint_regenerate_token(endpoint, by=request.user.actor)
        return Response(AuthTokenSerializer({"auth_token": token}).data)

    @extend_schema(
        summary="Verify with the challenge received",
        description="Marks the endpoint verified with the `challenge` of the latest "
        "`webhookhub.endpoint.verification` request it received (for receivers that "
        "cannot answer it themselves); the deliveries held for it go at once. A wrong or "
        "used challenge is a 400 and changes nothing. To get a new challenge: "
        "`POST …/verification/`.",
        request=VerifySerializer,
        responses={200: EndpointSerializer},
    )
    @action(detail=True, methods=["post"])
    def verify(self, request, id=None):
        endpoint = self.get_object()
        data = self.validated(VerifySerializer)
        endpoint_verify(endpoint, challenge=data["challenge"], by=request.user.actor)
        return Response(EndpointSerializer(self.fresh(endpoint)).data)

    def handle_exception(self, exc):
        # The endpoint was deleted by a concurrent request between our lookup and the
        # service's locked re-read: the same 404 as if the DELETE had come first.
        if isinstance(exc, Endpoint.DoesNotExist):
            exc = NotFound()
        return super().handle_exception(exc)

    def fresh(self, endpoint: Endpoint) -> Endpoint:
        """The endpoint as the list shows it, re-read after a write."""
        return self.base_queryset().get(pk=endpoint.pk)
