"""The endpoint support views behind the admin's buttons: toggle, disable with a reason,
rotate the secret, regenerate the token, send a test event, recover, filter preview.

Each validates, checks its own permission, calls the service the API and commands use,
and records who acted.
"""

from datetime import timedelta
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from console.endpoint_widgets import filter_preview_answer, retry_preview_answer
from console.health_columns import DAY
from deliveries.explain import delivery_reason, endpoint_state
from deliveries.models import FINAL_STATUSES as FINAL
from deliveries.models import TEST_EVENT_TYPE, Delivery, DeliveryStatus, EndpointHealth, Trigger
from deliveries.selectors import delivery_test_attempt
from deliveries.services import endpoint_failed_since, endpoint_recover, endpoint_test_queue
from endpoints.models import Endpoint
from endpoints.services import (
    endpoint_disable,
    endpoint_enable,
    endpoint_regenerate_token,
    endpoint_rotate_secret,
)
from events.selectors import events_matching_pattern
from webhookhub.admin_utils import ReasonForm, actor, show_once


class EndpointSupportViews:
    """Mixed into EndpointAdmin: the per-endpoint support pages and their URLs."""

    # -- per-endpoint support views
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/toggle/", view(self.toggle_view), name="endpoints_endpoint_toggle"),
            path("<int:pk>/disable/", view(self.disable_view), name="endpoints_endpoint_disable"),
            path(
                "<int:pk>/rotate-secret/", view(self.rotate_view), name="endpoints_endpoint_rotate"
            ),
            path(
                "<int:pk>/regenerate-token/",
                view(self.regenerate_view),
                name="endpoints_endpoint_regenerate",
            ),
            path("<int:pk>/send-test/", view(self.test_view), name="endpoints_endpoint_test"),
            path("<int:pk>/recover/", view(self.recover_view), name="endpoints_endpoint_recover"),
            path(
                "filter-preview/",
                view(self.filter_preview_view),
                name="endpoints_endpoint_filter_preview",
            ),
            path(
                "retry-preview/",
                view(self.retry_preview_view),
                name="endpoints_endpoint_retry_preview",
            ),
            *super().get_urls(),
        ]

    def _render(self, request, template, context):
        return TemplateResponse(
            request,
            template,
            {**self.admin_site.each_context(request), "opts": self.model._meta, **context},
        )

    def _endpoint(self, request, pk, permission):
        endpoint = get_object_or_404(Endpoint.objects.select_related("partner"), pk=pk)
        if not self.has_view_permission(request, endpoint) or not getattr(
            self, f"has_{permission}_permission"
        )(request):
            raise PermissionDenied
        return endpoint

    def _back(self, endpoint):
        return HttpResponseRedirect(reverse("admin:endpoints_endpoint_change", args=[endpoint.pk]))

    def toggle_view(self, request, pk):
        """The list's On/Off button: never one click on a live partner. On → the
        switch-off page (with its reason); Off → a confirmation with an optional reason."""
        endpoint = self._endpoint(request, pk, "toggle")
        if endpoint.enabled:
            return HttpResponseRedirect(
                reverse("admin:endpoints_endpoint_disable", args=[endpoint.pk])
            )
        form = ReasonForm(request.POST if "confirm" in request.POST else None)
        if form.is_bound and form.is_valid():
            endpoint_enable(endpoint, by=actor(request), reason=form.cleaned_data["reason"])
            self.message_user(
                request,
                _("%(name)s is on; what waited for it is sent now.") % {"name": endpoint.name},
                messages.SUCCESS,
            )
            return self._back(endpoint)
        return self._render(
            request,
            "admin/endpoints/endpoint/confirm.html",
            {
                "title": _("Switch %(name)s on") % {"name": endpoint.name},
                "explanation": _(
                    "Deliveries to %(url)s start again; the deliveries kept while it was off "
                    "are sent now, with a fresh circuit."
                )
                % {"url": endpoint.url},
                "form": form,
                "confirm": True,
                "button": _("Switch on"),
                "original": endpoint,
            },
        )

    def disable_view(self, request, pk):
        endpoint = self._endpoint(request, pk, "toggle")
        form = DisableForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            endpoint_disable(
                endpoint,
                by=actor(request),
                reason=form.cleaned_data["reason"],
                cancel_waiting=form.cleaned_data["cancel_waiting"],
            )
            self.message_user(
                request,
                _("%(name)s is off; its deliveries wait (your reason is in the audit trail).")
                % {"name": endpoint.name},
                messages.SUCCESS,
            )
            return self._back(endpoint)
        return self._render(
            request,
            "admin/endpoints/endpoint/disable.html",
            {
                "title": _("Switch %(name)s off") % {"name": endpoint.name},
                "form": form,
                "endpoints": [endpoint],
                "original": endpoint,
            },
        )

    def rotate_view(self, request, pk):
        endpoint = self._endpoint(request, pk, "rotate")
        form = RotateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            secret = endpoint_rotate_secret(
                endpoint, by=actor(request), grace=timedelta(hours=form.cleaned_data["grace_hours"])
            )
            return show_once(
                request,
                title=_("Signing secret rotated"),
                label=_("New signing secret of %(name)s") % {"name": endpoint.name},
                value=secret,
                back_url=reverse("admin:endpoints_endpoint_change", args=[endpoint.pk]),
                note=_(
                    "The previous secret keeps signing for %(hours)s h: every webhook in "
                    "that window carries both signatures."
                )
                % {"hours": form.cleaned_data["grace_hours"]},
            )
        return self._render(
            request,
            "admin/endpoints/endpoint/confirm.html",
            {
                "title": _("Rotate the signing secret of %(name)s") % {"name": endpoint.name},
                "form": form,
                "original": endpoint,
                "button": _("Rotate secret"),
                "explanation": _(
                    "A new secret is created now and shown once. The old one keeps "
                    "signing alongside it during the grace period."
                ),
            },
        )

    def regenerate_view(self, request, pk):
        endpoint = self._endpoint(request, pk, "rotate")
        if request.method == "POST":
            token = endpoint_regenerate_token(endpoint, by=actor(request))
            return show_once(
                request,
                title=_("Bearer token regenerated"),
                label=_("New bearer token of %(name)s") % {"name": endpoint.name},
                value=token,
                back_url=reverse("admin:endpoints_endpoint_change", args=[endpoint.pk]),
                note=_(
                    "It replaces the old token at once: webhooks now carry "
                    "`Authorization: Bearer <this token>`."
                ),
            )
        return self._render(
            request,
            "admin/endpoints/endpoint/confirm.html",
            {
                "title": _("Regenerate the bearer token of %(name)s") % {"name": endpoint.name},
                "original": endpoint,
                "button": _("Regenerate token"),
                "explanation": _("The old token stops being sent immediately."),
            },
        )

    def test_view(self, request, pk):
        """Queue a test event (a worker sends it), wait briefly for the answer, then show
        it on a page of its own that refreshes itself until the answer is in."""
        endpoint = self._endpoint(request, pk, "test")
        url = reverse("admin:endpoints_endpoint_test", args=[endpoint.pk])
        if request.method == "POST":
            try:
                delivery = endpoint_test_queue(endpoint, by=actor(request))
            except Endpoint.DoesNotExist:
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
        waiting = delivery is not None and attempt is None and delivery.status not in FINAL
        return self._render(
            request,
            "admin/endpoints/endpoint/test_result.html",
            {
                "title": _("Send a test event to %(name)s") % {"name": endpoint.name},
                "original": endpoint,
                "delivery": delivery,
                "attempt": attempt,
                "waiting": waiting,
                "why": delivery_reason(delivery).text if waiting else "",
                "refresh_seconds": 1,
            },
        )

    def recover_view(self, request, pk):
        endpoint = self._endpoint(request, pk, "replay")
        form = RecoverForm(request.POST or None)
        count = None
        if request.method == "POST" and form.is_valid():
            since = form.cleaned_data["since"]
            if "confirm" in request.POST:
                try:
                    n = endpoint_recover(endpoint, since=since, by=actor(request))
                except ValidationError as exc:
                    form.add_error("since", exc.messages)
                else:
                    self.message_user(
                        request,
                        _("Re-sending %(n)s failed deliveries to %(name)s.")
                        % {"n": n, "name": endpoint.name},
                        messages.SUCCESS,
                    )
                    return self._back(endpoint)
            else:
                count = endpoint_failed_since(endpoint, since).count()
        waiting = recover_context(
            endpoint, form.cleaned_data["since"] if count is not None else None
        )
        return self._render(
            request,
            "admin/endpoints/endpoint/recover.html",
            {
                "title": _("Recover failed deliveries of %(name)s") % {"name": endpoint.name},
                "form": form,
                "original": endpoint,
                "count": count,
                **waiting,
            },
        )

    def filter_preview_view(self, request):
        """Which of the last 100 events of the chosen types a filter lets through.

        Takes `event_type` and `filter` (JSON), or the endpoint form itself posted as it
        stands (its filter rows and ticked event types), so unsaved values are previewed."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        params = request.POST if request.method == "POST" else request.GET
        shown = filter_preview_answer(
            params,
            lambda pattern: events_matching_pattern(pattern, limit=100),
            default_pattern=params.get("event_type", "").strip() or "*",
        )
        return self._render(
            request,
            "admin/endpoints/endpoint/filter_preview.html",
            {"title": _("Filter preview"), **shown},
        )

    def retry_preview_view(self, request):
        """The schedule a retry policy gives, from the form's retry fields (or `retry_policy`
        as JSON), computed by the workers' own policy function: JSON with the rendered
        table for the form's script, or a page of its own without JavaScript."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        html, data = retry_preview_answer(request.POST if request.method == "POST" else request.GET)
        if "application/json" in request.headers.get("Accept", ""):
            return JsonResponse(data)
        return self._render(
            request,
            "admin/endpoints/endpoint/retry_preview.html",
            {"title": _("Retry schedule"), "preview_html": html},
        )


def recover_context(endpoint: Endpoint, since) -> dict:
    """What else a recover touches or leaves: the failed ones by status, the unfinished
    ones it does not re-send (pending behind an open circuit or a switch), and what the
    circuit will do to the re-sent ones."""
    if since is None:
        return {}
    counts = dict(
        Delivery.objects.filter(endpoint=endpoint, created_at__gte=since)
        .exclude(event__event_type__name=TEST_EVENT_TYPE)
        .values_list("status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    health = EndpointHealth.objects.filter(pk=endpoint.pk).first()
    state = endpoint_state(endpoint, health)
    held = state.code.startswith("off_") or state.code in ("circuit_open", "probing")
    return {
        "retrying": counts.get(DeliveryStatus.RETRYING, 0),
        "dead": counts.get(DeliveryStatus.DEAD, 0),
        "pending": counts.get(DeliveryStatus.PENDING, 0),
        "in_flight": counts.get(DeliveryStatus.IN_FLIGHT, 0),
        "held_by": state.text if held else "",
        "circuit_open": state.code == "circuit_open",
    }


class DisableForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        label=gettext_lazy("Reason"),
        help_text=gettext_lazy("Shown to support and in the notice."),
    )
    cancel_waiting = forms.BooleanField(
        required=False,
        label=gettext_lazy("Cancel its waiting deliveries"),
        help_text=gettext_lazy(
            "Otherwise they are kept and go out when the endpoint is switched on again."
        ),
    )


class RotateForm(forms.Form):
    grace_hours = forms.IntegerField(
        min_value=0,
        max_value=168,
        initial=24,
        label=gettext_lazy("Grace hours"),
        help_text=gettext_lazy("How long the old secret keeps signing (0–168 h)."),
    )


class RecoverForm(forms.Form):
    since = forms.DateTimeField(
        label=gettext_lazy("Since"),
        help_text=gettext_lazy(
            "Re-send every delivery to this endpoint that failed since this time "
            "(YYYY-MM-DD HH:MM)."
        ),
        initial=lambda: timezone.localtime(timezone.now() - DAY).strftime("%Y-%m-%d %H:%M"),
    )
