"""The endpoint form Support fills in: structured fields over the JSON the API takes.

Each structured field (retry policy, custom headers, event types, payload filter) is a
JSON form field whose widget (`console.endpoint_widgets`) shows rows and fields and
posts them back as that JSON; the raw JSON, behind "Advanced", is the same field. The
rules are the API's (`endpoints.validation`, through `Endpoint.clean()` and the
subscription validators) and the writes are the services' (`endpoints.services`):
nothing here decides what is valid or how an endpoint is saved.
"""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from console.endpoint_widgets import (
    EventTypesWidget,
    FilterWidget,
    HeadersWidget,
    RetryPolicyWidget,
    StructuredJSONWidget,
)
from endpoints import header_rules
from endpoints.models import Endpoint
from endpoints.services import endpoint_create, endpoint_regenerate_token, endpoint_update
from endpoints.validation import (
    validate_auth_token,
    validate_filter_field,
    validate_subscription_pattern,
)
from events.models import EventType

# --- The endpoint form ----------------------------------------------------------------


class StructuredJSONField(forms.JSONField):
    """A JSON field whose empty value is its model's (`{}` or null), not an error."""

    def __init__(self, *, empty=None, **kwargs):
        self.empty = empty
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        return self.empty if value is None else value


TOKEN_CHOICES = {
    "keep": _("Keep as it is"),
    "none": _("No token"),
    "generate": _("Generate a new token (shown once after saving)"),
    "set": _("Use the token the partner gave (type it below)"),
    "remove": _("Remove the token (send no Authorization header)"),
}
EDITABLE_FIELDS = (
    "name",
    "url",
    "description",
    "headers",
    "timeout_seconds",
    "retry_policy",
    "rate_limit_per_second",
    "max_in_flight",
    "ordered",
    "send_traceparent",
    "filter",
)


class EndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https", label=_("URL"))
    headers = StructuredJSONField(
        empty={},
        label=_("Headers"),
        widget=HeadersWidget,
        help_text=_(
            "Extra request headers. Values are secrets and shown masked: leave a masked "
            "value as it is to keep it, or type the whole new value. Clear a row to remove it."
        ),
    )
    retry_policy = StructuredJSONField(
        empty={},
        label=_("Retry policy"),
        widget=RetryPolicyWidget,
        help_text=_(
            "When a failed delivery is tried again. After a timeout or an HTTP 429 the next "
            "try waits at least 60 s; Retry-After is honoured up to the longest wait."
        ),
    )
    filter = StructuredJSONField(
        label=_("Payload filter"),
        widget=FilterWidget,
        help_text=_(
            "Only events whose payload passes are delivered, whatever their type. Paths are "
            "dotted, into the envelope (data.order.amount); values are read as JSON when "
            'they can be (100, true, "100"), else as text. No condition: everything passes.'
        ),
    )
    event_types = StructuredJSONField(
        required=True,
        label=_("Event types"),
        widget=EventTypesWidget,
        error_messages={"required": _("Tick at least one event type, or a wildcard.")},
        help_text=_("The event types this endpoint receives."),
    )
    token_action = forms.ChoiceField(
        label=_("Token to send"),
        widget=forms.RadioSelect,
        required=False,
        help_text=_("Sent as Authorization: Bearer <token> with every webhook."),
    )
    token_value = forms.CharField(
        label=_("Partner's token"),
        required=False,
        strip=False,
        max_length=header_rules.MAX_TOKEN_LENGTH,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "size": 50}),
        help_text=_('Only with "Use the token the partner gave".'),
    )

    class Meta:
        model = Endpoint
        fields = ("partner", *EDITABLE_FIELDS)
        # The model's own verbose names, translatable here (on the model a label change
        # is a migration).
        labels = {
            "partner": _("Partner"),
            "name": _("Name"),
            "description": _("Description"),
            "timeout_seconds": _("Timeout seconds"),
            "rate_limit_per_second": _("Rate limit per second"),
            "max_in_flight": _("Max in flight"),
            "ordered": _("Ordered"),
            "send_traceparent": _("Send traceparent"),
        }

    class Media:
        css = {"all": ["console/endpoint_form.css"]}
        js = ["console/endpoint_form.js"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        endpoint = self.instance
        self.initial["headers"] = header_rules.masked(endpoint.headers)
        subscriptions = list(endpoint.subscriptions.all()) if endpoint.pk else []
        self.subscription_filters = {s.event_type: s.filter for s in subscriptions if s.filter}
        self.initial.setdefault(
            "event_types",
            [
                {"event_type": s.event_type, "filter": s.filter} if s.filter else s.event_type
                for s in subscriptions
            ],
        )
        if "event_types" in self.fields:
            self.fields["event_types"].widget.catalog = list(
                EventType.objects.filter(archived_at__isnull=True).values_list(
                    "name", "description"
                )
            )
        if "token_action" in self.fields:
            if not endpoint.pk:
                choices = ("none", "generate", "set")
            elif endpoint.auth_token:
                choices = ("keep", "generate", "set", "remove")
            else:
                choices = ("keep", "generate", "set")
            self.fields["token_action"].choices = [(c, TOKEN_CHOICES[c]) for c in choices]
            self.fields["token_action"].initial = choices[0]
        if self.is_bound:
            for name, field in self.fields.items():
                if isinstance(field.widget, StructuredJSONWidget):
                    field.widget.posted_mode = field.widget.mode(self.data, self.add_prefix(name))

    def clean_headers(self):
        headers = self.cleaned_data["headers"]
        if not isinstance(headers, dict):
            return headers  # the model's validation says what is wrong
        return header_rules.keep_masked(headers, self.instance.headers if self.instance.pk else {})

    def clean_event_types(self):
        """Names and wildcards, or {"event_type", "filter"} as the API takes them. Ticked
        boxes keep a subscription's own filter (only the JSON edits those)."""
        items = self.cleaned_data["event_types"]
        if not isinstance(items, list):
            raise ValidationError(_("A list of event type names and wildcards."))
        if self.fields["event_types"].widget.posted_mode == "fields":
            items = [
                {"event_type": p, "filter": self.subscription_filters[p]}
                if p in self.subscription_filters
                else p
                for p in items
            ]
        errors = []
        for item in items:
            pattern, spec = (
                (item.get("event_type"), item.get("filter"))
                if isinstance(item, dict)
                else (item, None)
            )
            if isinstance(item, dict) and not set(item) <= {"event_type", "filter"}:
                errors.append(_('Use a name, or an object {"event_type": ..., "filter": ...}.'))
                continue
            try:
                validate_subscription_pattern(pattern)
                validate_filter_field(spec)
            except ValidationError as exc:
                errors.extend(exc.messages)
        if errors:
            raise ValidationError(errors)
        return items

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("token_action") == "set":
            token = cleaned.get("token_value") or ""
            if not token:
                self.add_error("token_value", _("Type the token the partner gave you."))
            else:
                try:
                    validate_auth_token(token)
                except ValidationError as exc:
                    self.add_error("token_value", exc.messages)
        return cleaned

    def save_endpoint(self, *, by: str) -> tuple[Endpoint, str | None]:
        """Create or update the endpoint and its subscriptions through the services.
        Returns it and the bearer token when one was generated (to show once)."""
        data = self.cleaned_data
        fields = {name: data[name] for name in EDITABLE_FIELDS if name in data}
        action = data.get("token_action") or "keep"
        if action == "set":
            fields["auth_token"] = data["token_value"]
        elif action == "remove":
            fields["auth_token"] = ""
        if self.instance.pk is None:
            endpoint = endpoint_create(
                data["partner"], event_types=data["event_types"], by=by, **fields
            )
        else:
            endpoint = endpoint_update(
                self.instance, event_types=data["event_types"], by=by, **fields
            )
        token = endpoint_regenerate_token(endpoint, by=by) if action == "generate" else None
        return endpoint, token
