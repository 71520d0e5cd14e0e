from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from webhookhub import health
from webhookhub.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("webhookhub.api.urls")),
    path("portal/", include("portal.urls")),
    path("i18n/", include("django.conf.urls.i18n")),  # set_language: the portal's switcher
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Our view, not django_prometheus.urls: it merges every process's counters
    # (multiprocess mode) and adds the delivery state gauges (webhookhub/metrics.py).
    path("metrics", metrics_view, name="prometheus-django-metrics"),
]

# Under /api/ these answer in the API's JSON error shape; elsewhere Django's pages.
handler400 = "webhookhub.api.views.bad_request"
handler403 = "webhookhub.api.views.permission_denied"
handler404 = "webhookhub.api.views.page_not_found"
handler500 = "webhookhub.api.views.server_error"

if settings.DEBUG:
    from webhookhub.demo import demo_receiver

    urlpatterns.append(path("demo/hooks/<str:behaviour>", demo_receiver, name="demo-receiver"))
