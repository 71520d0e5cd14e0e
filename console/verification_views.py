"""The endpoint page's "Verify again…" (permission endpoints.toggle_endpoint: like
switching off, it can hold the endpoint's deliveries): a confirmation that says what
will happen, an optional reason for the audit trail, then a new challenge."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext as _

from deliveries.verification import endpoint_verification_send
from endpoints.models import Endpoint
from endpoints.verification import verification_required, verification_status
from webhookhub.admin_utils import ReasonForm, actor

VERIFY_PERMISSION = "endpoints.toggle_endpoint"


class VerificationViews:
    """Mixed into EndpointAdmin: its "Verify again" page and URL."""

    def get_urls(self):
        view = self.admin_site.admin_view(self.verify_again_view)
        return [
            path("<int:pk>/verify-again/", view, name="endpoints_endpoint_verify_again"),
            *super().get_urls(),
        ]

    def verify_again_view(self, request, pk):
        """GET: the confirmation page; POST: a new challenge, then back to the endpoint."""
        if not request.user.has_perm(VERIFY_PERMISSION):
            raise PermissionDenied
        endpoint = get_object_or_404(Endpoint.objects.select_related("partner"), pk=pk)
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            endpoint_verification_send(
                endpoint, by=actor(request), reason=form.cleaned_data["reason"]
            )
            self.message_user(
                request,
                _("A new verification challenge is on its way to %(url)s.") % {"url": endpoint.url},
                messages.SUCCESS,
            )
            return redirect("admin:endpoints_endpoint_change", endpoint.pk)
        if verification_required():
            explanation = _(
                "A new signed challenge (webhookhub.endpoint.verification) is sent to the "
                "endpoint. Until it answers it, or the partner pastes it in the portal or "
                "the API, its deliveries are held."
            )
        else:
            explanation = _(
                "A new signed challenge (webhookhub.endpoint.verification) is sent to the "
                "endpoint. Verification is not required here, so nothing is held meanwhile."
            )
        return TemplateResponse(
            request,
            "admin/endpoints/endpoint/confirm_action.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "original": endpoint,
                "state_id": "verification-state",
                "title": _("Verify %(endpoint)s again") % {"endpoint": endpoint.name},
                "state": verification_status(endpoint)[1],
                "explanation": explanation,
                "form": form,
                "button": _("Send a new challenge"),
            },
        )
