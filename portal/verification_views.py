"""The portal's verification page of a webhook: where it stands, a form to paste the
challenge the endpoint received, and "Send a new challenge" — over the services the
admin and the API call."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _

from deliveries.verification import endpoint_verification_send
from endpoints.verification import endpoint_verify, verification_required, verification_status
from portal import queries
from portal.forms import ChallengeForm
from portal.session import partner_required


@partner_required
def verification_page(request, endpoint_id):
    """GET: the state and the forms. POST `challenge`: verify with it (the form again,
    saying why, if it is not the current one); POST `again`: a new challenge."""
    endpoint = queries.partner_endpoint(request.partner, endpoint_id)
    here = reverse("portal:verification", args=[endpoint.public_id])
    form = ChallengeForm(request.POST if "challenge" in request.POST else None)
    if request.method == "POST" and "again" in request.POST:
        try:
            endpoint_verification_send(endpoint, by=request.portal_by)
        except type(endpoint).DoesNotExist:
            raise Http404 from None
        messages.success(
            request,
            _("A new challenge is on its way to %(url)s; this page shows when it is answered.")
            % {"url": endpoint.url},
        )
        return HttpResponseRedirect(here)
    if request.method == "POST" and form.is_valid():
        try:
            challenge = form.cleaned_data["challenge"]
            endpoint_verify(endpoint, challenge=challenge, by=request.portal_by)
        except ValidationError as exc:
            form.add_error("challenge", exc.message_dict["challenge"])
        else:
            messages.success(
                request, _("%(name)s is verified; its webhooks are sent.") % {"name": endpoint.name}
            )
            return HttpResponseRedirect(reverse("portal:webhooks"))
    code, text = verification_status(endpoint)
    return TemplateResponse(
        request,
        "portal/verification.html",
        {
            "endpoint": endpoint,
            "code": code,
            "status": text,
            "held": endpoint.awaiting_verification,
            "required": verification_required(),
            "form": form,
            "nav": "webhooks",
        },
        status=400 if form.errors else 200,
    )
