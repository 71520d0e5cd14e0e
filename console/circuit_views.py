"""The endpoint page's circuit buttons: "Probe now" and "Close circuit" (permission
deliveries.manage_circuit), each with a confirmation that says what will happen and an
optional reason for the audit trail."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext as _

from deliveries.explain import when
from deliveries.models import WAITING_STATUSES, CircuitState, Delivery, EndpointHealth
from deliveries.services import endpoint_close_circuit, endpoint_probe_now
from endpoints.models import Endpoint
from webhookhub.admin_utils import ReasonForm, actor

CIRCUIT_PERMISSION = "deliveries.manage_circuit"


class CircuitViews:
    """Mixed into EndpointAdmin: its circuit pages and their URLs."""

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/probe/", view(self.probe_view), name="endpoints_endpoint_probe"),
            path(
                "<int:pk>/close-circuit/",
                view(self.close_circuit_view),
                name="endpoints_endpoint_close_circuit",
            ),
            *super().get_urls(),
        ]

    def probe_view(self, request, pk):
        return self._circuit_action(
            request,
            pk,
            act=endpoint_probe_now,
            done=_(
                "Probing %(endpoint)s now: one waiting delivery goes at once; the "
                "circuit closes if it succeeds and the rest follow."
            ),
            nothing=_("The circuit of %(endpoint)s is not open: nothing to probe."),
            title=_("Probe %(endpoint)s now"),
            explanation=_(
                "The cooldown ends now: a worker sends the oldest waiting delivery as the "
                "probe. If it succeeds the circuit closes and everything waiting goes; if "
                "it fails the circuit stays open for a longer cooldown."
            ),
            button=_("Probe now"),
        )

    def close_circuit_view(self, request, pk):
        return self._circuit_action(
            request,
            pk,
            act=endpoint_close_circuit,
            done=_("Circuit of %(endpoint)s closed: what waited behind it is sent now."),
            nothing=_("The circuit of %(endpoint)s was already closed."),
            title=_("Close the circuit of %(endpoint)s"),
            explanation=_(
                "Everything waiting behind the circuit is sent now, without a probe first "
                "(the concurrency cap and the rate limit still apply). Do this when you know "
                "the receiver is back."
            ),
            button=_("Close the circuit"),
        )

    def _circuit_action(self, request, pk, *, act, done, nothing, title, explanation, button):
        """GET: the confirmation page; POST: `act` (a deliveries service) with who and
        why, then back to the endpoint saying what happened."""
        endpoint, health = self._circuit_target(request, pk)
        names = {"endpoint": endpoint.name}
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            if act(endpoint, by=actor(request), reason=form.cleaned_data["reason"]):
                self.message_user(request, done % names, messages.SUCCESS)
            else:
                self.message_user(request, nothing % names, messages.WARNING)
            return redirect("admin:endpoints_endpoint_change", endpoint.pk)
        return self._circuit_page(
            request,
            endpoint,
            health,
            form,
            title=title % names,
            explanation=explanation,
            button=button,
        )

    def _circuit_target(self, request, pk):
        if not request.user.has_perm(CIRCUIT_PERMISSION):
            raise PermissionDenied
        endpoint = get_object_or_404(Endpoint.objects.select_related("partner"), pk=pk)
        return endpoint, EndpointHealth.objects.filter(pk=pk).first()

    def _circuit_page(self, request, endpoint, health, form, *, title, explanation, button):
        waiting = Delivery.objects.filter(endpoint=endpoint, status__in=WAITING_STATUSES).count()
        state = health.get_circuit_state_display() if health else CircuitState.CLOSED.label
        return TemplateResponse(
            request,
            "admin/endpoints/endpoint/confirm_action.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "original": endpoint,
                "state_id": "circuit-state",
                "title": title,
                "explanation": explanation,
                "state": _(
                    "Circuit: %(state)s; %(failures)s failures in a row; next probe "
                    "%(probe)s; %(waiting)s deliveries waiting."
                )
                % {
                    "state": state,
                    "failures": health.consecutive_failures if health else 0,
                    "probe": when(health.circuit_retry_at if health else None),
                    "waiting": waiting,
                },
                "form": form,
                "button": button,
            },
        )
