"""`/api/v1/` routes, the schema at `/api/schema/` and the docs at `/api/docs/`."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from audit.api import AuditEntryViewSet
from deliveries.api.endpoints import EndpointViewSet
from deliveries.api.views import DeliveryViewSet
from events.api.views import EventTypeViewSet, EventViewSet
from portal.api import PortalLinkViewSet
from webhookhub.api.views import api_not_found

router = SimpleRouter()
router.register("events", EventViewSet, basename="event")
router.register("endpoints", EndpointViewSet, basename="endpoint")
router.register("deliveries", DeliveryViewSet, basename="delivery")
router.register("event-types", EventTypeViewSet, basename="event-type")
router.register("audit", AuditEntryViewSet, basename="audit")
router.register("portal-links", PortalLinkViewSet, basename="portal-link")

urlpatterns = [
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    re_path(r"^[\s\S]*$", api_not_found),  # [\s\S]: paths with a newline too
]
