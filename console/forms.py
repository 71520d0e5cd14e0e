"""The endpoint form Support fills in: structured fields over the JSON the API takes.

Each structured field (retry policy, custom headers, event types, payload filter) is a
JSON form field whose widget shows rows and fields and posts them back as that JSON;
the raw JSON, behind "Advanced", is the same field. The rules are the API's
(`endpoints.validation`, through `Endpoint.clean()` and the subscription validators) and
the writes are the services' (`endpoints.services`): nothing here decides what is valid
or how an endpoint is saved.
"""

import json
import math
import re

from django import forms
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from deliveries.policy import STRATEGIES, PolicyError, RetryPolicy, next_delay
from endpoints import header_rules
from endpoints.models import Endpoint
from endpoints.services import endpoint_create, endpoint_regenerate_token, endpoint_update
from endpoints.validation import (
    validate_auth_token,
    validate_filter_field,
    validate_subscription_pattern,
)
from events.filters import OPERATORS
from events.models import EventType

WIDGETS = "admin/endpoints/endpoint/widgets/"


class StructuredJSONWidget(forms.Widget):
    """Fields and rows that post a JSON value, with the raw JSON behind "Advanced".

    Sub-inputs are named `<name>__<part>`; `<name>` is the raw JSON text area and
    `<name>__mode` says which counts ("json" once the Advanced box is ticked). A post
    carrying only the JSON text area (a script, a page from before) counts as JSON.
    """

    template_name = ""
    posted_mode = None  # set by the form when bound, so a re-shown form keeps it

    @staticmethod
    def modes(data, name):
        key = f"{name}__mode"
        return data.getlist(key) if hasattr(data, "getlist") else [data.get(key)]

    def mode(self, data, name) -> str:
        modes = self.modes(data, name)
        if "json" in modes:
            return "json"
        return "fields" if any(modes) or name not in data else "json"

    def value_from_datadict(self, data, files, name):
        if self.mode(data, name) == "json":
            return data.get(name)
        return json.dumps(self.from_parts(data, name), ensure_ascii=False)

    def value_omitted_from_data(self, data, files, name):
        return False

    def from_parts(self, data, name):
        raise NotImplementedError

    def to_parts(self, value):
        """The value as the widget's rows and fields, or None if they cannot show it."""
        raise NotImplementedError

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        raw = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        try:
            parts = self.to_parts(json.loads(raw) if raw else None)
        except ValueError:
            parts = None
        context["widget"].update(
            raw=raw or "",
            parts=parts,
            json_mode=parts is None or self.posted_mode == "json",
        )
        return context

    def render(self, name, value, attrs=None, renderer=None):
        context = self.get_context(name, value, attrs)
        return mark_safe(render_to_string(WIDGETS + self.template_name, context))  # noqa: S308


def _indexed(data, prefix: str) -> list[int]:
    """The row numbers posted for inputs named `<prefix><n>`, in order."""
    found = {
        int(key[len(prefix) :]) for key in data if re.fullmatch(re.escape(prefix) + r"\d+", key)
    }
    return sorted(found)


# --- Retry policy ---------------------------------------------------------------------

STRATEGY_CHOICES = [
    ("", _("Default: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h")),
    ("exponential", _("Exponential: base delay × 2^(n−1)")),
    ("linear", _("Linear: base delay × n")),
    ("fixed", _("Fixed: the base delay every time")),
    ("schedule", _("Explicit schedule")),
]
assert {value for value, _label in STRATEGY_CHOICES if value} == set(STRATEGIES)
# Which settings each strategy reads (deliveries.policy); the others are not posted.
STRATEGY_FIELDS = {
    "": (),
    "exponential": ("max_attempts", "base_delay", "max_delay", "jitter"),
    "linear": ("max_attempts", "base_delay", "max_delay", "jitter"),
    "fixed": ("max_attempts", "base_delay", "max_delay", "jitter"),
    "schedule": ("schedule", "max_attempts", "max_delay", "jitter"),
}
POLICY_FIELDS = (
    ("max_attempts", _("Attempts in all"), _("1–50, the first try included.")),
    ("base_delay", _("Base delay (s)"), _("1 s – 24 h.")),
    ("max_delay", _("Longest wait (s)"), _("Caps every wait; at least the base delay.")),
    ("jitter", _("Jitter"), _("0–0.5: 0.2 spreads each wait by ±20 %.")),
    ("schedule", _("Schedule (s)"), _("Waits after each failed try, comma-separated.")),
)


def _number(text: str):
    """What a number field holds: an int, a float, or the text (the policy says why not)."""
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return value if math.isfinite(value) else text
    return text


class _FailedAttempt:
    """The attempt result a preview assumes: an HTTP 500, no Retry-After."""

    status_code = 500
    error_kind = None
    headers: dict = {}


def retry_preview(policy_data) -> dict:
    """The schedule the workers' own `next_delay` gives for `policy_data` after plain
    failures: each retry's wait (with the jitter's range) and when it goes, counted from
    the first try. Raises PolicyError for an invalid policy."""
    policy = RetryPolicy.from_dict(policy_data or None)
    now, result, elapsed, rows = timezone.now(), _FailedAttempt(), 0.0, []
    for attempt_no in range(1, policy.max_attempts):
        wait, low, high = (
            next_delay(policy, attempt_no, result, now=now, rand=lambda r=r: r).total_seconds()
            for r in (0.5, 0.0, 1.0)
        )
        elapsed += wait
        rows.append(
            {
                "attempt": attempt_no + 1,
                "wait": wait,
                "low": low,
                "high": high,
                "elapsed": elapsed,
                "wait_text": duration(wait),
                "range_text": f"{duration(low)} – {duration(high)}",
                "elapsed_text": duration(elapsed),
            }
        )
    return {"attempts": policy.max_attempts, "rows": rows, "policy": policy.to_dict()}


def duration(seconds: float) -> str:
    """`1 h 30 min`, `45 s`: the two largest units."""
    units = ((86400, _("%(n)d d")), (3600, _("%(n)d h")), (60, _("%(n)d min")), (1, _("%(n)d s")))
    seconds, parts = round(seconds), []
    for size, label in units:
        if seconds >= size or (size == 1 and not parts):
            parts.append(label % {"n": seconds // size})
            seconds %= size
        if len(parts) == 2:
            break
    return " ".join(str(p) for p in parts)


class RetryPolicyWidget(StructuredJSONWidget):
    template_name = "retry_policy.html"

    def from_parts(self, data, name):
        strategy = data.get(f"{name}__strategy", "")
        policy = {"strategy": strategy} if strategy else {}
        for key in STRATEGY_FIELDS.get(strategy, ()):
            text = (data.get(f"{name}__{key}") or "").strip()
            if key == "schedule" and text:
                policy[key] = [_number(item) for item in re.split(r"[\s,;]+", text) if item]
            elif text:
                policy[key] = _number(text)
        return policy

    def to_parts(self, value):
        if value is None or value == {}:
            return {"strategy": ""}
        if not isinstance(value, dict) or not set(value) <= {"strategy", *dict(POLICY_FIELDS)}:
            return None
        strategy = value.get("strategy", "schedule")
        if strategy not in STRATEGIES:
            return None
        parts = {"strategy": strategy}
        for key in STRATEGY_FIELDS[strategy]:
            if key == "schedule" and isinstance(value.get(key), list):
                parts[key] = ", ".join(
                    f"{item:g}" if _is_num(item) else str(item) for item in value[key]
                )
            elif key in value:
                parts[key] = f"{value[key]:g}" if _is_num(value[key]) else str(value[key])
        if set(value) - {"strategy", *STRATEGY_FIELDS[strategy]}:
            return None  # settings this strategy ignores: only the JSON shows them
        return parts

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        widget = context["widget"]
        try:
            widget["preview"] = retry_preview(json.loads(widget["raw"]) if widget["raw"] else None)
        except (ValueError, PolicyError) as exc:
            widget["preview"] = {"error": str(exc)}
        parts = widget["parts"] or {"strategy": ""}
        widget["strategies"] = STRATEGY_CHOICES
        widget["fields"] = [
            {
                "key": key,
                "label": label,
                "help": help_text,
                "value": parts.get(key, ""),
                "strategies": " ".join(s for s, keys in STRATEGY_FIELDS.items() if key in keys),
                "placeholder": ", ".join(f"{d:g}" for d in RetryPolicy.schedule)
                if key == "schedule"
                else f"{getattr(RetryPolicy, key):g}",
            }
            for key, label, help_text in POLICY_FIELDS
        ]
        return context


def _is_num(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- Custom headers -------------------------------------------------------------------


class HeadersWidget(StructuredJSONWidget):
    template_name = "headers.html"

    def from_parts(self, data, name):
        headers = {}
        for n in _indexed(data, f"{name}__name_"):
            key = (data.get(f"{name}__name_{n}") or "").strip()
            value = data.get(f"{name}__value_{n}") or ""
            if not key and not value:
                continue
            if key in headers:
                # The same name twice: kept apart in another case, so that the shared
                # rule (header names ignore case) says so instead of one row vanishing.
                key = next(
                    (k for k in (key.swapcase(), key.upper(), key.lower()) if k not in headers), key
                )
            headers[key] = value
        return headers

    def to_parts(self, value):
        if value is None:
            return []
        if not isinstance(value, dict):
            return None
        return [
            {"name": k, "value": v if isinstance(v, str) else json.dumps(v)}
            for k, v in value.items()
        ]

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"]["next_index"] = len(context["widget"]["parts"] or ())
        return context


# --- Payload filter -------------------------------------------------------------------

OPERATOR_CHOICES = [
    ("eq", _("eq — equals")),
    ("ne", _("ne — does not equal")),
    ("gt", _("gt — greater than")),
    ("gte", _("gte — at least")),
    ("lt", _("lt — less than")),
    ("lte", _("lte — at most")),
    ("in", _("in — one of (a, b, c)")),
    ("nin", _("nin — none of (a, b, c)")),
    ("contains", _("contains")),
    ("regex", _("regex — matches (RE2)")),
    ("exists", _("exists (true / false)")),
]
assert {op for op, _label in OPERATOR_CHOICES} == OPERATORS


def _filter_value(op: str, text: str):
    """A typed value: JSON when it reads as JSON (100, true, "100", [1, 2]), else text;
    a regex is always text, and `a, b` is a list for in / nin."""
    if op == "regex":
        return text
    try:
        return json.loads(text)
    except ValueError:
        if op in ("in", "nin"):
            return [_filter_value("eq", item.strip()) for item in text.split(",") if item.strip()]
        return text


def _filter_text(op: str, value) -> str:
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value
        return value if op == "regex" else json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


class FilterWidget(StructuredJSONWidget):
    template_name = "filter.html"

    def from_parts(self, data, name):
        conditions = []
        for n in _indexed(data, f"{name}__path_"):
            path = (data.get(f"{name}__path_{n}") or "").strip()
            op = data.get(f"{name}__op_{n}") or "eq"
            text = (data.get(f"{name}__value_{n}") or "").strip()
            if path or text:
                conditions.append({"path": path, "op": op, "value": _filter_value(op, text)})
        if not conditions:
            return None
        if len(conditions) == 1:
            return conditions[0]
        join = "or" if data.get(f"{name}__join") == "or" else "and"
        return {join: conditions}

    def to_parts(self, value):
        if value is None or value == {}:
            return {"join": "and", "rows": []}
        if not isinstance(value, dict):
            return None
        join, conditions = "and", [value]
        if len(value) == 1 and next(iter(value)) in ("and", "or"):
            join, conditions = next(iter(value.items()))
            if not isinstance(conditions, list):
                return None
        rows = []
        for condition in conditions:
            if not isinstance(condition, dict) or set(condition) != {"path", "op", "value"}:
                return None  # nested or malformed: only the JSON shows it
            op = condition["op"]
            rows.append(
                {"path": condition["path"], "op": op, "value": _filter_text(op, condition["value"])}
            )
        return {"join": join, "rows": rows}

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        widget = context["widget"]
        widget["operators"] = OPERATOR_CHOICES
        widget["next_index"] = len((widget["parts"] or {}).get("rows", ()))
        return context


# --- Event types ----------------------------------------------------------------------


class EventTypesWidget(StructuredJSONWidget):
    """Catalog checkboxes (with descriptions), a wildcard per prefix, and `*`."""

    template_name = "event_types.html"
    catalog: list = []  # [(name, description)], set by the form

    def from_parts(self, data, name):
        picks = (
            data.getlist(f"{name}__pick")
            if hasattr(data, "getlist")
            else data.get(f"{name}__pick", [])
        )
        return list(dict.fromkeys(picks))

    def to_parts(self, value):
        if value is None:
            return {"picked": [], "own_filter": []}
        if not isinstance(value, list) or not all(isinstance(i, str | dict) for i in value):
            return None
        picked = [i if isinstance(i, str) else i.get("event_type") for i in value]
        own = [i.get("event_type") for i in value if isinstance(i, dict) and i.get("filter")]
        return {"picked": picked, "own_filter": own}

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        widget = context["widget"]
        parts = widget["parts"] or {"picked": [], "own_filter": []}
        picked, own = set(parts["picked"]), set(parts["own_filter"])

        def item(pattern, label, description=""):
            return {
                "value": pattern,
                "label": label,
                "description": description,
                "checked": pattern in picked,
                "own_filter": pattern in own,
                "id": f"id_{name}__{re.sub(r'[^a-z0-9]+', '_', pattern)}",
            }

        groups: dict[str, list] = {}
        for type_name, description in self.catalog:
            groups.setdefault(type_name.split(".")[0], []).append(
                item(type_name, type_name, description)
            )
        widget["everything"] = item("*", "*", _("Every event type except webhookhub's own"))
        widget["groups"] = [
            {
                "wildcard": item(
                    f"{prefix}.*", f"{prefix}.*", _("Every %(prefix)s event") % {"prefix": prefix}
                ),
                "items": items,
            }
            for prefix, items in groups.items()
        ]
        offered = (
            {"*"}
            | {g["wildcard"]["value"] for g in widget["groups"]}
            | {n for n, _d in self.catalog}
        )
        widget["others"] = [
            item(p, p, _("Not in the catalog")) for p in parts["picked"] if p not in offered
        ]
        return context


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
    "filter",
)


class EndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https", label="URL")
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
        label=_("Bearer token"),
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
