"""Widgets of the endpoint form: fields and rows that post the JSON the API takes, with
the raw JSON behind "Advanced"; and the retry schedule preview, computed by the workers'
own policy function (`deliveries.policy.next_delay`).

Pure shells: they turn posted inputs into JSON and JSON into rows. What is valid is
decided by `endpoints.validation` (through the form), never here.
"""

import json
import math
import re

from django import forms
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from deliveries.policy import STRATEGIES, PolicyError, RetryPolicy, next_delay
from events.filters import OPERATORS, FilterError, compile_filter

WIDGETS = "admin/endpoints/endpoint/widgets/"


class StructuredJSONWidget(forms.Widget):
    """Fields and rows that post a JSON value, with the raw JSON behind "Advanced".

    Sub-inputs are named `<name>__<part>`; `<name>` is the raw JSON text area and
    `<name>__mode` says which counts ("json" once the Advanced box is ticked). A post
    carrying only the JSON text area (a script, a page from before) counts as JSON.
    """

    template_name = ""
    posted_mode = None  # set by the form when bound, so a re-shown form keeps it
    # The URL name of the page previewing this field's value (retry schedule, filter):
    # the admin's by default; the portal passes its own (the admin's needs staff).
    preview_url_name = ""

    def __init__(self, attrs=None, *, preview_url_name: str | None = None):
        super().__init__(attrs)
        if preview_url_name is not None:
            self.preview_url_name = preview_url_name

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
            preview_url=reverse(self.preview_url_name) if self.preview_url_name else "",
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

POLICY_KEYS = frozenset(key for key, _label, _help in POLICY_FIELDS)


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
    preview_url_name = "admin:endpoints_endpoint_retry_preview"

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
        if not isinstance(value, dict) or not set(value) <= {
            "strategy",
            *STRATEGY_FIELDS["schedule"],
            "base_delay",
        }:
            return None
        strategy = value.get("strategy", "schedule")
        if strategy not in STRATEGIES:
            return None
        parts = {"strategy": strategy}
        for key in STRATEGY_FIELDS[strategy]:
            if key == "schedule" and isinstance(value.get(key), list):
                parts[key] = ", ".join(_number_text(item) for item in value[key])
            elif key in value:
                parts[key] = _number_text(value[key])
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


def _number_text(value) -> str:
    """A stored setting as typed: `60`, `0.2`; anything else as it is."""
    if not _is_num(value):
        return str(value)
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


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
    preview_url_name = "admin:endpoints_endpoint_filter_preview"

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


# --- What the preview pages show (the admin's and the portal's) -------------------------


def retry_preview_answer(params) -> tuple[str, dict]:
    """The retry preview for a posted form (its retry fields, or `retry_policy` as JSON):
    the rendered table, and the JSON the form's script reads."""
    raw = RetryPolicyWidget().value_from_datadict(params, None, "retry_policy") or ""
    try:
        preview = retry_preview(json.loads(raw) if raw.strip() else None)
    except (ValueError, PolicyError) as exc:
        preview = {"error": str(exc)}
    html = render_to_string(WIDGETS + "retry_preview.html", {"preview": preview})
    return html, {
        "ok": "error" not in preview,
        "error": preview.get("error"),
        "attempts": preview.get("attempts"),
        "waits": [row["wait"] for row in preview.get("rows", ())],
        "policy": preview.get("policy"),
        "html": html,
    }


def filter_preview_answer(params, events_for_pattern, *, default_pattern: str = "*") -> dict:
    """Which of the newest 100 events of the ticked types (`events_for_pattern(pattern)`
    picks them: all events, or one partner's) the posted filter lets through."""
    patterns = params.getlist("event_types__pick") or [default_pattern]
    raw = FilterWidget().value_from_datadict(params, None, "filter") or ""
    raw = raw.strip() if raw.strip() != "null" else ""
    error, rows = None, []
    try:
        predicate = compile_filter(json.loads(raw) if raw else None)
    except (ValueError, FilterError) as exc:
        error = str(exc)
    else:
        events = {e.pk: e for p in patterns for e in events_for_pattern(p)}
        newest = sorted(events.values(), key=lambda e: (e.created_at, e.pk), reverse=True)
        rows = [(event, predicate(json.loads(event.body))) for event in newest[:100]]
    return {
        "pattern": ", ".join(patterns),
        "filter": raw,
        "error": error,
        "rows": rows,
        "passed": sum(1 for _event, ok in rows if ok),
    }
