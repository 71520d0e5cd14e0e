"""The admin site: Django's admin, with the delivery-health dashboard as its home."""

from datetime import datetime

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from webhookhub.charts import hourly_bars

POLL_SECONDS = 5
LINK_MAX_ENDPOINTS = 50  # a reason behind more endpoints links to all its deliveries
WAITING = "pending,retrying"
# An endpoint's deliveries that are not done: waiting (held ones too), in flight, dead.
UNFINISHED_OR_DEAD = "pending,retrying,in_flight,dead"

# Words the page's script shows; `%(name)s` is filled in by the script.
LIVE_LABELS = {
    "events": _("Events published"),
    "ok": _("Attempts succeeded"),
    "failed": _("Attempts failed"),
    "success_rate": _("Success rate"),
    "p50_ms": _("Latency p50"),
    "p95_ms": _("Latency p95"),
    "empty": _("Nothing in the last hour."),
    "updated": _("updated %(time)s"),
    "stale": _("not updated since %(time)s (%(error)s); trying again"),
    "at_least": _("at least %(n)s"),
    "seconds": _("%(s)s s"),
    "minutes": _("%(m)s min"),
    "hours": _("%(h)s h %(m)s min"),
    "days": _("%(d)s d %(h)s h"),
}


class WebhookhubAdminSite(admin.AdminSite):
    site_header = "webhookhub"
    site_title = "webhookhub"
    index_title = _("Delivery health")
    index_template = "admin/dashboard.html"
    # Nothing is served at "/" (the API, the portal and /metrics have their own paths):
    # no "View site" link that would lead to a 404.
    site_url = None

    def get_urls(self):
        return [
            path("shown-once/", self.admin_view(shown_once_view), name="shown_once"),
            path(
                "dashboard/live.json",
                self.admin_view(self.dashboard_live_view),
                name="dashboard_live",
            ),
            *super().get_urls(),
        ]

    def index(self, request, extra_context=None):
        extra_context = extra_context or {}
        if request.user.has_perm("deliveries.view_delivery"):
            from deliveries.dashboard import WAITING_REASONS, dashboard

            data = dashboard(refresh="refresh" in request.GET)
            live = live_payload()
            extra_context.update(
                dashboard=data,
                chart=hourly_bars(data.hourly),
                links=_dashboard_links(data),
                live=live,
                live_asof=timezone.localtime(datetime.fromisoformat(live["computed_at"])),
                live_labels=LIVE_LABELS,
                waiting_reasons=WAITING_REASONS,
                poll_seconds=POLL_SECONDS,
            )
        return super().index(request, extra_context)

    def dashboard_live_view(self, request):
        """The live figures as JSON, polled by the dashboard (admin login and
        deliveries.view_delivery required)."""
        if not request.user.has_perm("deliveries.view_delivery"):
            raise PermissionDenied
        return JsonResponse(live_payload())  # admin_view: never cached by browsers


def live_payload() -> dict:
    """The live figures with the filtered list behind each waiting figure."""
    from deliveries.dashboard import live

    data = dict(live())
    computed_at = timezone.localtime(datetime.fromisoformat(data["computed_at"]))
    waiting = dict(data["waiting"])
    endpoints = waiting.pop("endpoints")
    waiting["links"] = {
        reason: _waiting_link(reason, ids, computed_at) for reason, ids in endpoints.items()
    }
    data["waiting"] = waiting
    open_circuits = data.pop("open_circuit_endpoints")
    data["links"] = {
        "backlog": _changelist(
            "deliveries_delivery", status__in=WAITING, next_attempt_at__lte=computed_at.isoformat()
        ),
        "in_flight": _changelist("deliveries_delivery", status__exact="in_flight"),
        # By id: the endpoint list's circuit filter is not a lookup Django 5.2 allows.
        "open_circuits": _changelist(
            "endpoints_endpoint",
            **(
                {"id__in": ",".join(str(pk) for pk in open_circuits)}
                if 0 < len(open_circuits) <= LINK_MAX_ENDPOINTS
                else {"enabled__exact": "1"}
            ),
        ),
    }
    return data


def _waiting_link(reason: str, endpoint_ids: list[int], now) -> str:
    params = {"status__in": WAITING}
    if endpoint_ids and len(endpoint_ids) <= LINK_MAX_ENDPOINTS:
        params["endpoint__id__in"] = ",".join(str(pk) for pk in endpoint_ids)
    if reason == "ordered":
        params["next_attempt_at__isnull"] = "True"
    elif reason in ("due", "rate_limited"):
        params["next_attempt_at__lte"] = now.isoformat()
    elif reason == "later":
        params["next_attempt_at__gt"] = now.isoformat()
    return _changelist("deliveries_delivery", **params)


def _changelist(model: str, **params) -> str:
    url = reverse(f"admin:{model}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def _dashboard_links(data) -> dict:
    """The filtered list behind every number of the minute figures."""
    links = {
        "dead": _changelist("deliveries_delivery", status__exact="dead"),
        "disabled": _changelist("endpoints_endpoint", enabled__exact="0"),
        "windows": {},
        "failing": {
            endpoint.pk: _changelist(
                "deliveries_delivery",
                endpoint__id__exact=endpoint.pk,
                status__in=UNFINISHED_OR_DEAD,
            )
            for endpoint in data.failing
        },
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
            "dead": _changelist(
                "deliveries_delivery", status__exact="dead", completed_at__gte=since
            ),
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
        "title": (secret["title"] if secret else _("Nothing to show")),
    }
    response = TemplateResponse(request, "admin/shown_once.html", context)
    response["Cache-Control"] = "no-store"
    return response
