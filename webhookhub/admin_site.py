"""The admin site: Django's admin, with the delivery-health dashboard as its home."""

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from webhookhub.charts import hourly_bars


class WebhookhubAdminSite(admin.AdminSite):
    site_header = "webhookhub"
    site_title = "webhookhub"
    index_title = "Delivery health"
    index_template = "admin/dashboard.html"

    def get_urls(self):
        from django.urls import path

        return [
            path("shown-once/", self.admin_view(shown_once_view), name="shown_once"),
            *super().get_urls(),
        ]

    def index(self, request, extra_context=None):
        extra_context = extra_context or {}
        if request.user.has_perm("deliveries.view_delivery"):
            from deliveries.dashboard import dashboard

            data = dashboard(refresh="refresh" in request.GET)
            extra_context.update(
                dashboard=data,
                chart=hourly_bars(data.hourly),
                links=_dashboard_links(data),
            )
        return super().index(request, extra_context)


def _changelist(model: str, **params) -> str:
    url = reverse(f"admin:{model}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def _dashboard_links(data) -> dict:
    """The filtered list behind every number on the dashboard."""
    now = timezone.localtime(data.computed_at)
    links = {
        "backlog": _changelist(
            "deliveries_delivery",
            status__in="pending,retrying",
            next_attempt_at__lte=now.isoformat(),
        ),
        "in_flight": _changelist("deliveries_delivery", status__exact="in_flight"),
        "dead": _changelist("deliveries_delivery", status__exact="dead"),
        "open_circuits": _changelist(
            "endpoints_endpoint", health__circuit_state__in="open,half_open"
        ),
        "disabled": _changelist("endpoints_endpoint", enabled__exact="0"),
        "windows": {},
    }
    for window in data.windows:
        since = timezone.localtime(window.since).isoformat()
        links["windows"][window.label] = {
            "events": _changelist("events_event", created_at__gte=since),
            "ok": _changelist(
                "deliveries_delivery", status__exact="succeeded", last_attempt_at__gte=since
            ),
            "failed": _changelist(
                "deliveries_delivery", status__in="retrying,dead", last_attempt_at__gte=since
            ),
            "dead": _changelist("deliveries_delivery", status__exact="dead", created_at__gte=since),
        }
    return links


def shown_once_view(request):
    """Shows a secret kept by `show_once` and forgets it: reloading shows nothing."""
    from django.template.response import TemplateResponse

    from webhookhub.admin_utils import shown_once_pop

    secret = shown_once_pop(request)
    context = {
        **admin.site.each_context(request),
        "secret": secret,
        "title": (secret["title"] if secret else "Nothing to show"),
    }
    response = TemplateResponse(request, "admin/shown_once.html", context)
    response["Cache-Control"] = "no-store"
    return response
