"""Sign-in, the webhooks list and the per-webhook actions of the portal.

Thin shells: each view finds the partner's own object (404 otherwise), validates a
form, calls the service the admin and the API call (`by="portal:<label>"`), and says
what happened.
"""

from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from deliveries.explain import delivery_reason, endpoint_state
from deliveries.models import FINAL_STATUSES, Delivery, Trigger
from deliveries.selectors import delivery_test_attempt
from deliveries.services import endpoint_test_queue
from endpoints.services import (
    endpoint_delete,
    endpoint_disable,
    endpoint_enable,
    endpoint_rotate_secret,
)
from endpoints.verification import verification_required
from portal import queries
from portal.forms import MAIN_FIELDS, PortalEndpointForm, RotateForm
from portal.reveal import reveal_once, reveal_pop
from portal.services import LinkRefused, portal_link_check, portal_link_redeem
from portal.session import partner_required, sign_in, sign_out

MAIN = len(MAIN_FIELDS)


def _back():
    return HttpResponseRedirect(reverse("portal:webhooks"))


# --- Signing in -----------------------------------------------------------------------


@never_cache
def sign_in_view(request, token):
    """GET checks the link and asks to continue (a mail scanner that follows links does
    not use it up); POST uses it and starts the session."""
    try:
        link = portal_link_redeem(token) if request.method == "POST" else portal_link_check(token)
    except LinkRefused as refused:
        return TemplateResponse(
            request, "portal/sign_in_refused.html", {"reason": refused.reason}, status=403
        )
    if request.method == "POST":
        sign_in(request, link)
        return redirect("portal:webhooks")
    return TemplateResponse(request, "portal/sign_in.html", {"link": link})


@require_POST
def sign_out_view(request):
    sign_out(request)
    return TemplateResponse(request, "portal/signed_out.html", {"why": "signed_out"})


@never_cache
@partner_required
def shown_once_view(request):
    kept = reveal_pop(request)
    response = TemplateResponse(request, "portal/shown_once.html", {"kept": kept})
    response["Cache-Control"] = "no-store"
    return response


# --- Webhooks -------------------------------------------------------------------------


def subscription_labels(endpoint) -> list[str]:
    labels = []
    for subscription in endpoint.subscriptions.all():
        pattern = subscription.event_type
        if pattern == "*":
            labels.append(_("all events"))
        elif pattern.endswith(".*"):
            labels.append(_("all %(prefix)s events") % {"prefix": pattern[:-2]})
        else:
            labels.append(pattern)
    return labels


@partner_required
def webhooks_view(request):
    rows = []
    for endpoint in queries.endpoints_overview(request.partner):
        health = getattr(endpoint, "health", None)
        rate = 100.0 * (endpoint.ok_24h or 0) / endpoint.total_24h if endpoint.total_24h else None
        rows.append(
            {
                "endpoint": endpoint,
                "state": endpoint_state(endpoint, health),
                "triggers": subscription_labels(endpoint),
                "rate": rate,
            }
        )
    return TemplateResponse(
        request,
        "portal/webhooks.html",
        {"rows": rows, "nav": "webhooks", "verifying": verification_required()},
    )


@require_POST
@partner_required
def toggle_view(request, endpoint_id):
    """The list's On/Off switch: one click, at once. Off keeps what waits; on sends it."""
    endpoint = queries.partner_endpoint(request.partner, endpoint_id)
    if endpoint.enabled:
        endpoint_disable(endpoint, by=request.portal_by, reason=_("switched off in the portal"))
        messages.success(
            request,
            _(
                "%(name)s is off. Its deliveries — those waiting and those of events "
                "published while it is off — are kept and sent when it is on again."
            )
            % {"name": endpoint.name},
        )
    else:
        endpoint_enable(endpoint, by=request.portal_by)
        messages.success(
            request, _("%(name)s is on; what waited for it is sent now.") % {"name": endpoint.name}
        )
    return _back()


def _save_form(request, form, *, created: bool):
    endpoint, token = form.save_endpoint(by=request.portal_by)
    if endpoint.awaiting_verification and (created or "url" in form.changed_data):
        messages.info(
            request,
            _(
                "A verification challenge was sent to %(url)s: its webhooks are held until "
                "your endpoint answers it (or you paste it on its Verify page)."
            )
            % {"url": endpoint.url},
        )
    items = []
    if created:
        items.append((_("Signing secret"), endpoint.signing_secret))
    if token:
        items.append((_("Bearer token"), token))
    if items:
        return reveal_once(
            request,
            title=_("Webhook %(name)s saved") % {"name": endpoint.name},
            items=items,
            back_url=reverse("portal:webhooks"),
            note=_(
                "Copy these now: they are not shown again. Verify each webhook's signature "
                "with the signing secret; the token arrives as Authorization: Bearer <token>."
            ),
        )
    messages.success(request, _("%(name)s saved.") % {"name": endpoint.name})
    return _back()


@partner_required
def create_view(request):
    form = PortalEndpointForm(request.POST or None, partner=request.partner)
    if request.method == "POST" and form.is_valid():
        try:
            return _save_form(request, form, created=True)
        except ValidationError as exc:
            _add_errors(form, exc)
    return TemplateResponse(
        request,
        "portal/webhook_form.html",
        {"form": form, "title": _("Register webhook"), "nav": "webhooks", "main_count": MAIN},
    )


@partner_required
def edit_view(request, endpoint_id):
    endpoint = queries.partner_endpoint(request.partner, endpoint_id)
    form = PortalEndpointForm(request.POST or None, instance=endpoint, partner=request.partner)
    if request.method == "POST" and form.is_valid():
        try:
            return _save_form(request, form, created=False)
        except ValidationError as exc:
            _add_errors(form, exc)
    return TemplateResponse(
        request,
        "portal/webhook_form.html",
        {
            "form": form,
            "endpoint": endpoint,
            "title": _("Edit webhook %(name)s") % {"name": endpoint.name},
            "nav": "webhooks",
            "main_count": MAIN,
        },
    )


def _add_errors(form, exc: ValidationError):
    """A service's refusal on the form's fields (the rest above the form)."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


@partner_required
def delete_view(request, endpoint_id):
    endpoint = queries.partner_endpoint(request.partner, endpoint_id)
    if request.method == "POST":
        endpoint_delete(endpoint, by=request.portal_by)
        messages.success(request, _("%(name)s deleted.") % {"name": endpoint.name})
        return _back()
    return TemplateResponse(
        request, "portal/confirm_delete.html", {"endpoint": endpoint, "nav": "webhooks"}
    )


@partner_required
def rotate_view(request, endpoint_id):
    endpoint = queries.partner_endpoint(request.partner, endpoint_id)
    form = RotateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        hours = form.cleaned_data["grace_hours"]
        secret = endpoint_rotate_secret(
            endpoint, by=request.portal_by, grace=timedelta(hours=hours)
        )
        note = (
            _(
                "The previous secret keeps signing for %(hours)s h: every webhook in that "
                "window carries both signatures, so you can switch your receiver whenever "
                "you like within it."
            )
            % {"hours": hours}
            if hours
            else _("The previous secret no longer signs.")
        )
        return reveal_once(
            request,
            title=_("Signing secret of %(name)s rotated") % {"name": endpoint.name},
            items=[(_("New signing secret"), secret)],
            back_url=reverse("portal:webhooks"),
            note=note,
        )
    return TemplateResponse(
        request, "portal/rotate.html", {"endpoint": endpoint, "form": form, "nav": "webhooks"}
    )


@partner_required
def test_view(request, endpoint_id):
    """Queue a test event (a worker sends it), wait briefly for the answer, then show it
    on a page that refreshes itself until the answer is in."""
    endpoint = queries.partner_endpoint(request.partner, endpoint_id)
    url = reverse("portal:test", args=[endpoint.public_id])
    if request.method == "POST":
        try:
            delivery = endpoint_test_queue(endpoint, by=request.portal_by)
        except type(endpoint).DoesNotExist:
            raise Http404 from None
        delivery_test_attempt(delivery, wait=settings.WEBHOOKHUB_TEST_WAIT_SECONDS)
        return HttpResponseRedirect(f"{url}?{urlencode({'delivery': delivery.public_id})}")
    delivery = attempt = None
    if request.GET.get("delivery"):
        delivery = get_object_or_404(
            Delivery.objects.select_related("event"),
            public_id=request.GET["delivery"],
            endpoint=endpoint,
            next_trigger=Trigger.TEST,
        )
        attempt = delivery_test_attempt(delivery)
    waiting = delivery is not None and attempt is None and delivery.status not in FINAL_STATUSES
    return TemplateResponse(
        request,
        "portal/test_result.html",
        {
            "endpoint": endpoint,
            "delivery": delivery,
            "attempt": attempt,
            "waiting": waiting,
            "why": delivery_reason(delivery).text if waiting else "",
            "refresh_seconds": 1,
            "nav": "webhooks",
        },
    )
