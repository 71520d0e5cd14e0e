"""`/portal/`: the partner portal. Every page carries the framing policy."""

from django.urls import path

from portal import delivery_views, doc_views, verification_views, views
from portal.framing import portal_framing

app_name = "portal"

ID = "<str:endpoint_id>"
_routes = [
    ("", views.webhooks_view, "webhooks"),
    ("sign-in/<str:token>/", views.sign_in_view, "sign_in"),
    ("sign-out/", views.sign_out_view, "sign_out"),
    ("shown-once/", views.shown_once_view, "shown_once"),
    ("webhooks/new/", views.create_view, "create"),
    (f"webhooks/{ID}/", views.edit_view, "edit"),
    (f"webhooks/{ID}/toggle/", views.toggle_view, "toggle"),
    (f"webhooks/{ID}/delete/", views.delete_view, "delete"),
    (f"webhooks/{ID}/rotate-secret/", views.rotate_view, "rotate"),
    (f"webhooks/{ID}/test/", views.test_view, "test"),
    (f"webhooks/{ID}/verification/", verification_views.verification_page, "verification"),
    (f"webhooks/{ID}/deliveries/", delivery_views.endpoint_deliveries_view, "endpoint_deliveries"),
    (f"webhooks/{ID}/recover/", delivery_views.recover_view, "recover"),
    ("deliveries/", delivery_views.deliveries_view, "deliveries"),
    ("deliveries/<str:delivery_id>/", delivery_views.delivery_view, "delivery"),
    ("deliveries/<str:delivery_id>/retry/", delivery_views.retry_view, "retry"),
    ("retry-preview/", delivery_views.retry_preview_view, "retry_preview"),
    ("filter-preview/", delivery_views.filter_preview_view, "filter_preview"),
    ("events/", doc_views.catalog_view, "catalog"),
    ("verifying/", doc_views.verifying_view, "verifying"),
]
urlpatterns = [path(route, portal_framing(view), name=name) for route, view, name in _routes]
