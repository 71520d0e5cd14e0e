"""The delivery log (overall and per webhook), a delivery's attempts, retry and recover,
and the form previews (retry schedule, payload filter) of the portal."""

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from console.endpoint_widgets import filter_preview_answer, retry_preview_answer
from deliveries.explain import delivery_reasons
from deliveries.models import RETRYABLE_STATUSES
from deliveries.services import delivery_retry_now, endpoint_failed_since, endpoint_recover
from events.selectors import schema_check
from portal import queries
from portal.forms import STATUS_LABELS, DeliveryFilterForm, RecoverForm
from portal.session import partner_required
from webhookhub.admin_utils import CappedCountPaginator

PAGE_SIZE = 50


def _log(request, *, endpoint=None):
    deliveries = (
        queries.partner_deliveries(request.partner)
        .select_related("event__event_type", "endpoint")
        .defer("event__body", "event__payload")
        .order_by("-created_at", "-id")
    )
    if endpoint is not None:
        deliveries = deliveries.filter(endpoint=endpoint)
    form = DeliveryFilterForm(request.GET or None)
    if form.is_valid():
        if form.cleaned_data["status"]:
            deliveries = deliveries.filter(status=form.cleaned_data["status"])
        event_type = form.cleaned_data["event_type"].strip()
        if event_type.endswith(".*"):
            deliveries = deliveries.filter(event__event_type__name__startswith=event_type[:-1])
        elif event_type:
            deliveries = deliveries.filter(event__event_type__name=event_type)
    # Never a full COUNT(*) over a busy partner's history (10 000+ is shown as such).
    page = CappedCountPaginator(deliveries, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    reasons = delivery_reasons(rows)
    query = request.GET.copy()
    query.pop("page", None)
    return TemplateResponse(
        request,
        "portal/deliveries.html",
        {
            "endpoint": endpoint,
            "form": form,
            "page": page,
            "rows": [
                {
                    "delivery": d,
                    "why": reasons[d.pk],
                    "status_label": STATUS_LABELS.get(d.status, d.status),
                    "retryable": d.status in RETRYABLE_STATUSES,
                }
                for d in rows
            ],
            "query": query.urlencode(),
            "nav": "deliveries",
        },
    )


@partner_required
def deliveries_view(request):
    return _log(request)


@partner_required
def endpoint_deliveries_view(request, endpoint_id):
    return _log(request, endpoint=queries.partner_endpoint(request.partner, endpoint_id))


@partner_required
def delivery_view(request, delivery_id):
    delivery = queries.partner_delivery(request.partner, delivery_id)
    attempts = list(delivery.attempts.order_by("-number"))
    return TemplateResponse(
        request,
        "portal/delivery.html",
        {
            "delivery": delivery,
            "why": delivery_reasons([delivery])[delivery.pk],
            "status_label": STATUS_LABELS.get(delivery.status, delivery.status),
            "retryable": delivery.status in RETRYABLE_STATUSES and not delivery.event.is_expunged,
            "attempts": attempts,
            "payload": delivery.event.expunged_notice()
            if delivery.event.is_expunged
            else json.dumps(delivery.event.payload, indent=2, ensure_ascii=False),
            "schema_check": schema_check(delivery.event),
            "nav": "deliveries",
        },
    )


@require_POST
@partner_required
def retry_view(request, delivery_id):
    delivery = queries.partner_delivery(request.partner, delivery_id)
    try:
        queued = delivery_retry_now(delivery, by=request.portal_by)
    except ValidationError as exc:  # its event's payload was erased
        messages.error(request, " ".join(exc.messages))
        queued = None
    if queued:
        messages.success(
            request, _("Delivery %(id)s is sent again now.") % {"id": delivery.public_id}
        )
    elif queued is not None:
        messages.warning(
            request,
            _("Delivery %(id)s is in flight or already delivered: nothing to retry.")
            % {"id": delivery.public_id},
        )
    return HttpResponseRedirect(reverse("portal:delivery", args=[delivery.public_id]))


@partner_required
def recover_view(request, endpoint_id):
    """Re-send what failed since a time: the count first, then on confirmation."""
    endpoint = queries.partner_endpoint(request.partner, endpoint_id)
    form = RecoverForm(request.POST or None)
    count = None
    if request.method == "POST" and form.is_valid():
        since = form.cleaned_data["since"]
        if "confirm" in request.POST:
            try:
                n = endpoint_recover(endpoint, since=since, by=request.portal_by)
            except ValidationError as exc:
                form.add_error("since", exc.messages)
            else:
                messages.success(
                    request,
                    _("Re-sending %(n)s failed deliveries to %(name)s.")
                    % {"n": n, "name": endpoint.name},
                )
                return HttpResponseRedirect(
                    reverse("portal:endpoint_deliveries", args=[endpoint.public_id])
                )
        else:
            count = endpoint_failed_since(endpoint, since).count()
    return TemplateResponse(
        request,
        "portal/recover.html",
        {"endpoint": endpoint, "form": form, "count": count, "nav": "deliveries"},
    )


# --- Form previews --------------------------------------------------------------------


@partner_required
def retry_preview_view(request):
    """The schedule a retry policy gives, computed by the workers' own policy function:
    JSON for the form's script, or a page of its own without JavaScript."""
    html, data = retry_preview_answer(request.POST if request.method == "POST" else request.GET)
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse(data)
    return TemplateResponse(request, "portal/retry_preview.html", {"preview_html": html})


@partner_required
def filter_preview_view(request):
    """Which of the partner's last 100 events of the ticked types the filter lets
    through (the form posted as it stands, so unsaved values are previewed)."""
    params = request.POST if request.method == "POST" else request.GET
    shown = filter_preview_answer(
        params, lambda pattern: queries.events_for_pattern(request.partner, pattern)
    )
    return TemplateResponse(request, "portal/filter_preview.html", shown)
