from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from webhookhub import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("django_prometheus.urls")),
]

if settings.DEBUG:
    from webhookhub.demo import demo_receiver

    urlpatterns.append(path("demo/hooks/<str:behaviour>", demo_receiver, name="demo-receiver"))
