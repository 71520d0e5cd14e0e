"""`POST /api/v1/portal-links/`: a publisher token asks for a partner's sign-in link,
so the company's own product can offer a "Manage webhooks" button."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from endpoints.models import Partner
from portal.services import MAX_LINK_MINUTES, portal_link_create
from webhookhub.api.exceptions import from_django
from webhookhub.api.fields import StrictIntegerField, StrictSerializer, TextField
from webhookhub.api.permissions import PUBLISHER
from webhookhub.api.views import ApiViewMixin


class PortalLinkCreateSerializer(StrictSerializer):
    partner = TextField(
        max_length=40,
        help_text="`prt_…`: whose portal the link opens; an unknown or inactive partner is a 400.",
    )
    minutes = StrictIntegerField(
        required=False,
        min_value=1,
        max_value=MAX_LINK_MINUTES,
        help_text="How long the link stays valid (default WEBHOOKHUB_PORTAL_LINK_MINUTES).",
    )
    label = TextField(
        required=False, max_length=150, help_text="Who it is for (the audit trail's `by`)."
    )


class PortalLinkSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="Single-use sign-in URL: give it to the user now.")
    expires_at = serializers.DateTimeField()


@extend_schema(tags=["portal"])
class PortalLinkViewSet(ApiViewMixin, viewsets.GenericViewSet):
    """Sign-in links to the partner portal (publisher tokens only)."""

    roles = {"create": {PUBLISHER}}
    serializer_class = PortalLinkSerializer

    @extend_schema(
        summary="Create a portal sign-in link",
        description="A single-use link that signs the user in to the partner's portal (its "
        "webhooks, delivery log, event catalog). Only the link's hash is stored.",
        request=PortalLinkCreateSerializer,
        responses={201: PortalLinkSerializer},
        examples=[
            OpenApiExample(
                "A link for 15 minutes",
                value={"partner": "prt_…", "minutes": 15},
                request_only=True,
            )
        ],
    )
    def create(self, request):
        data = self.validated(PortalLinkCreateSerializer)
        partner = Partner.objects.filter(public_id=data["partner"]).first()
        if partner is None:
            raise ValidationError({"partner": ["No partner with this id."]})
        try:
            link, url = portal_link_create(
                partner,
                minutes=data.get("minutes"),
                by=request.user.actor,
                label=data.get("label", ""),
                base_url=request.build_absolute_uri("/").rstrip("/"),
            )
        except DjangoValidationError as exc:
            raise from_django(exc) from None
        return Response(
            PortalLinkSerializer({"url": url, "expires_at": link.expires_at}).data,
            status=status.HTTP_201_CREATED,
        )
