"""The portal's forms. The endpoint form is the admin's (console.forms.EndpointForm:
the same structured widgets, the same validation through Endpoint.clean() and the
services), without the partner field: the endpoint belongs to the signed-in partner."""

from datetime import timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from console.endpoint_widgets import FilterWidget, RetryPolicyWidget
from console.forms import EDITABLE_FIELDS, EndpointForm
from deliveries.models import DeliveryStatus
from endpoints.header_rules import mask_value

PORTAL_FIELDS = tuple(f for f in EDITABLE_FIELDS if f != "max_in_flight")
TIMEOUT_CHOICES = [(s, _("%(n)s seconds") % {"n": s}) for s in (5, 10, 15, 30, 60)]
PORTAL_TOKEN_CHOICES = {
    "keep": _("Keep the current token"),
    "none": _("No token"),
    "generate": _("Generate a token (shown once after saving)"),
    "set": _("Type my own token"),
    "remove": _("Remove the token (send no Authorization header)"),
}


MAIN_FIELDS = ("name", "url", "token_action", "token_value", "event_types", "description")


class PortalEndpointForm(EndpointForm):
    timeout_seconds = forms.TypedChoiceField(
        label=_("Timeout"),
        choices=TIMEOUT_CHOICES,
        coerce=int,
        initial=15,
        help_text=_("How long your receiver may take to answer before the try counts as failed."),
    )

    class Meta(EndpointForm.Meta):
        fields = PORTAL_FIELDS

    def __init__(self, *args, partner, **kwargs):
        super().__init__(*args, **kwargs)
        self.partner = partner
        self.instance.partner = partner
        # The same widgets as the admin's, previewing through the portal's pages.
        self.fields["retry_policy"].widget = RetryPolicyWidget(
            preview_url_name="portal:retry_preview"
        )
        self.fields["filter"].widget = FilterWidget(preview_url_name="portal:filter_preview")
        self.fields["url"].help_text = _(
            "Where webhooks are POSTed. Use HTTPS; private and local addresses are refused."
        )
        self.fields["name"].help_text = _("To tell your webhooks apart, e.g. order-sync.")
        self.fields["event_types"].help_text = _(
            "The events this webhook receives; a wildcard takes every event of a kind. The "
            "event catalog shows each type with an example."
        )
        self.fields["token_value"].label = _("Your token")
        self.fields["token_value"].help_text = _('Only with "Type my own token".')
        # What the partner fills in first (the seed's Register Webhook dialog); delivery
        # settings follow under their own heading.
        self.order_fields(MAIN_FIELDS)
        current = self.instance.timeout_seconds
        if current and current not in dict(TIMEOUT_CHOICES):  # set through the API
            self.fields["timeout_seconds"].choices = sorted(
                [*TIMEOUT_CHOICES, (current, _("%(n)s seconds") % {"n": current})]
            )
        action = self.fields["token_action"]
        action.label = _("Token")
        if self.instance.pk and self.instance.auth_token:
            action.help_text = _(
                "Sent as Authorization: Bearer <token> with every webhook. Current token: "
                "%(masked)s"
            ) % {"masked": mask_value(self.instance.auth_token)}
        action.choices = [(value, PORTAL_TOKEN_CHOICES[value]) for value, _label in action.choices]
        if self.is_bound:
            for name in ("retry_policy", "filter"):
                widget = self.fields[name].widget
                widget.posted_mode = widget.mode(self.data, self.add_prefix(name))

    def clean(self):
        cleaned = super().clean()
        cleaned["partner"] = self.partner  # what save_endpoint creates the endpoint for
        return cleaned


class RotateForm(forms.Form):
    grace_hours = forms.IntegerField(
        label=_("Grace period (hours)"),
        min_value=0,
        max_value=168,
        initial=24,
        help_text=_("How long the old secret keeps signing beside the new one (0–168 h)."),
    )


class ChallengeForm(forms.Form):
    challenge = forms.CharField(
        label=_("Challenge received"),
        max_length=200,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "size": 40}),
        help_text=_(
            "The value of “challenge” in the webhookhub.endpoint.verification request your "
            "endpoint received (it starts with whch_)."
        ),
    )


class RecoverForm(forms.Form):
    since = forms.DateTimeField(
        label=_("Failed since"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
        help_text=_("Re-send every delivery to this webhook that failed since this time."),
        initial=lambda: timezone.localtime(timezone.now() - timedelta(hours=24)).strftime(
            "%Y-%m-%dT%H:%M"
        ),
    )


STATUS_LABELS = {
    DeliveryStatus.PENDING: _("Pending"),
    DeliveryStatus.IN_FLIGHT: _("In flight"),
    DeliveryStatus.RETRYING: _("Retrying"),
    DeliveryStatus.SUCCEEDED: _("Succeeded"),
    DeliveryStatus.DEAD: _("Dead"),
    DeliveryStatus.CANCELLED: _("Cancelled"),
}
STATUS_CHOICES = [("", _("Any status")), *STATUS_LABELS.items()]


class DeliveryFilterForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), choices=STATUS_CHOICES, required=False)
    event_type = forms.CharField(label=_("Event type"), required=False, max_length=200)
