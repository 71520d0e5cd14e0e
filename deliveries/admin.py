"""Deliveries and their attempts: read-only history, with retry and cancel."""

import json
import shlex

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.admin import audit_trail
from deliveries.explain import delivery_reason, delivery_reasons, when
from deliveries.models import (
    RETRYABLE_STATUSES,
    WAITING_STATUSES,
    CircuitState,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    EndpointHealth,
)
from deliveries.services import (
    deliveries_cancel,
    deliveries_retry_now,
    delivery_cancel,
    delivery_retry_now,
)
from endpoints.models import Endpoint
from events.models import Event
from webhookhub.admin_utils import HistoryAdminMixin, ReasonForm, actor

STATUS_COLOURS = {
    DeliveryStatus.SUCCEEDED: "#2e7d32",
    DeliveryStatus.DEAD: "#ba2121",
    DeliveryStatus.RETRYING: "#b26a00",
    DeliveryStatus.IN_FLIGHT: "#1565c0",
    DeliveryStatus.CANCELLED: "#666",
    DeliveryStatus.PENDING: "#444",
}


def pretty_json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


class AttemptInline(admin.StackedInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    ordering = ("-number",)
    fields = (
        ("number", "trigger", "triggered_by", "started_at", "duration_ms"),
        ("outcome", "error_kind", "error_message"),
        "request_url",
        "request_headers_pretty",
        "response_status_code",
        "response_headers_pretty",
        "response_body_pretty",
    )
    readonly_fields = (
        "number",
        "trigger",
        "triggered_by",
        "started_at",
        "duration_ms",
        "outcome",
        "error_kind",
        "error_message",
        "request_url",
        "request_headers_pretty",
        "response_status_code",
        "response_headers_pretty",
        "response_body_pretty",
    )

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("Outcome"))
    def outcome(self, attempt):
        colour, label = (
            ("#2e7d32", _("succeeded")) if attempt.succeeded else ("#ba2121", _("failed"))
        )
        return format_html('<strong style="color:{}">{}</strong>', colour, label)

    @admin.display(description=gettext_lazy("Request headers (secrets masked)"))
    def request_headers_pretty(self, attempt):
        return format_html("<pre>{}</pre>", pretty_json(attempt.request_headers))

    @admin.display(description=gettext_lazy("Response headers"))
    def response_headers_pretty(self, attempt):
        return format_html("<pre>{}</pre>", pretty_json(attempt.response_headers))

    @admin.display(description=gettext_lazy("Response body"))
    def response_body_pretty(self, attempt):
        note = _(" (truncated at 20 KB)") if attempt.response_body_truncated else ""
        return format_html(
            '<pre style="white-space:pre-wrap">{}</pre>{}',
            attempt.response_body or _("(empty)"),
            note,
        )


class ExplainedChangeList(ChangeList):
    """Explains the page's deliveries at once (deliveries.explain: a fixed number of
    queries whatever the page size), for the "status / why" column."""

    def get_results(self, request):
        super().get_results(request)
        reasons = delivery_reasons(self.result_list)
        for delivery in self.result_list:
            delivery.reason = reasons[delivery.pk]


@admin.register(Delivery)
class DeliveryAdmin(HistoryAdminMixin, admin.ModelAdmin):
    # Fits 1366 px: the error and the next attempt are in the "why" (whole sentence on
    # hover and on the delivery's page), the type under the event, the partner under
    # the endpoint.
    list_display = (
        "delivery_id",
        "status_why",
        "event_short",
        "endpoint_partner",
        "tries",
        "code",
        "created",
    )
    list_display_links = ("delivery_id",)
    list_filter = (
        "status",
        "endpoint",
        ("endpoint__partner", admin.RelatedFieldListFilter),
        ("event__event_type", admin.RelatedFieldListFilter),
        "created_at",
    )
    list_select_related = ("event__event_type", "endpoint__partner")
    search_fields = ("=public_id", "=event__public_id")
    search_help_text = gettext_lazy("A dlv_… or evt_… id.")
    readonly_fields = (
        "public_id",
        "why",
        "status",
        "event_link",
        "endpoint_link",
        "attempt_count",
        "next_attempt_at",
        "claimed_until",
        "last_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
        "completed_at",
        "request_body",
        "curl",
        "audit",
    )
    fields = readonly_fields
    inlines = [AttemptInline]
    actions = ["retry_now", "cancel"]
    change_form_template = "admin/deliveries/delivery/change_form.html"

    def get_changelist(self, request, **kwargs):
        return ExplainedChangeList

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/retry/", view(self.retry_view), name="deliveries_delivery_retry"),
            path("<int:pk>/cancel/", view(self.cancel_view), name="deliveries_delivery_cancel"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        delivery = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if delivery is not None:
            extra_context.update(
                can_retry=delivery.status in RETRYABLE_STATUSES
                and not delivery.event.is_expunged
                and self.has_replay_permission(request),
                can_cancel=delivery.status in WAITING_STATUSES
                and self.has_replay_permission(request),
            )
        return super().change_view(request, object_id, form_url, extra_context)

    # -- one delivery: Retry now / Cancel, with a confirmation and an optional reason
    def retry_view(self, request, pk):
        delivery = self._delivery_for_action(request, pk)
        circuit = _circuit_notice(delivery)
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            reason = form.cleaned_data["reason"]
            try:
                queued = delivery_retry_now(delivery, by=actor(request), reason=reason)
            except ValidationError as exc:  # its event's payload was erased
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
                return redirect("admin:deliveries_delivery_change", delivery.pk)
            if queued:
                text = _("Delivery %(id)s queued: a worker sends it now.") % {
                    "id": delivery.public_id
                }
                level = messages.SUCCESS
                if circuit:
                    text = _("Delivery %(id)s queued. %(circuit)s") % {
                        "id": delivery.public_id,
                        "circuit": circuit,
                    }
                    level = messages.WARNING
                self.message_user(request, text, level)
            else:
                self.message_user(
                    request,
                    _("Delivery %(id)s is %(status)s now: nothing was queued.")
                    % {"id": delivery.public_id, "status": delivery.get_status_display()},
                    messages.ERROR,
                )
            return redirect("admin:deliveries_delivery_change", delivery.pk)
        return self._confirm(
            request,
            delivery,
            form,
            title=_("Retry delivery %(id)s now") % {"id": delivery.public_id},
            explanation=_(
                "It is sent again now with the same webhook-id and the same bytes; the new "
                "attempt is recorded as retried by you."
            ),
            warning=circuit,
            button=_("Retry now"),
        )

    def cancel_view(self, request, pk):
        delivery = self._delivery_for_action(request, pk)
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            if delivery_cancel(delivery, by=actor(request), reason=form.cleaned_data["reason"]):
                self.message_user(
                    request,
                    _("Delivery %(id)s cancelled: it will not be sent.")
                    % {"id": delivery.public_id},
                    messages.SUCCESS,
                )
            else:
                self.message_user(
                    request,
                    _("Delivery %(id)s is not waiting: nothing was cancelled.")
                    % {"id": delivery.public_id},
                    messages.ERROR,
                )
            return redirect("admin:deliveries_delivery_change", delivery.pk)
        return self._confirm(
            request,
            delivery,
            form,
            title=_("Cancel delivery %(id)s") % {"id": delivery.public_id},
            explanation=_("A waiting delivery is cancelled and never sent."),
            warning="",
            button=_("Cancel the delivery"),
        )

    def _delivery_for_action(self, request, pk) -> Delivery:
        if not self.has_replay_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        return get_object_or_404(Delivery.objects.select_related("endpoint", "event"), pk=pk)

    def _confirm(self, request, delivery, form, *, title, explanation, warning, button):
        return TemplateResponse(
            request,
            "admin/deliveries/delivery/confirm_one.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "original": delivery,
                "title": title,
                "explanation": explanation,
                "why": delivery_reason(delivery).text,
                "warning": warning,
                "form": form,
                "button": button,
            },
        )

    @admin.display(description=gettext_lazy("Status / why"), ordering="status")
    def status_why(self, delivery):
        reason = getattr(delivery, "reason", None) or delivery_reason(delivery)
        return format_html(
            '<strong style="color:{}">{}</strong><br><span class="why" title="{}">{}</span>',
            STATUS_COLOURS.get(delivery.status, "#444"),
            delivery.get_status_display(),
            reason.text,
            reason.short,
        )

    @admin.display(description=gettext_lazy("Why"))
    def why(self, delivery):
        return format_html('<strong id="delivery-why">{}</strong>', delivery_reason(delivery).text)

    @admin.display(description=gettext_lazy("Endpoint / partner"))
    def endpoint_partner(self, delivery):
        return format_html(
            '<a href="{}">{}</a><br><span class="quiet">{}</span>',
            reverse("admin:endpoints_endpoint_change", args=[delivery.endpoint_id]),
            delivery.endpoint.name,
            delivery.endpoint.partner.name,
        )

    @admin.display(description=gettext_lazy("Audit trail"))
    def audit(self, delivery):
        return format_html("{}", audit_trail(delivery))

    def get_search_results(self, request, queryset, search_term):
        """A dlv_ id, or an evt_ id resolved to its event first: index lookups only."""
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.startswith("evt_"):
            return queryset.filter(
                event_id__in=Event.objects.filter(public_id=term).values("pk")
            ), False
        return queryset.filter(public_id=term), False

    @admin.display(description=gettext_lazy("Event"))
    def event_link(self, delivery):
        return format_html(
            '<a href="{}">{}</a><br><span class="quiet">{}</span>',
            reverse("admin:events_event_change", args=[delivery.event_id]),
            delivery.event.public_id,
            delivery.event.event_type.name,
        )

    @admin.display(description=gettext_lazy("Delivery"), ordering="public_id")
    def delivery_id(self, delivery):
        return short_id(delivery.public_id)

    @admin.display(description=gettext_lazy("Event"))
    def event_short(self, delivery):
        return format_html(
            '<a href="{}">{}</a><br>{}',
            reverse("admin:events_event_change", args=[delivery.event_id]),
            delivery.event.event_type.name,
            short_id(delivery.event.public_id),
        )

    @admin.display(description=gettext_lazy("Tries"), ordering="attempt_count")
    def tries(self, delivery):
        return delivery.attempt_count

    @admin.display(description="HTTP", ordering="last_status_code")
    def code(self, delivery):
        return delivery.last_status_code or "–"

    @admin.display(description=gettext_lazy("Created"), ordering="created_at")
    def created(self, delivery):
        moment = timezone.localtime(delivery.created_at)
        return format_html(
            '<span title="{}">{}<br>{}</span>',
            moment.isoformat(timespec="seconds"),
            moment.strftime("%m-%d"),
            moment.strftime("%H:%M:%S"),
        )

    @admin.display(description=gettext_lazy("Endpoint"))
    def endpoint_link(self, delivery):
        return format_html(
            '<a href="{}">{}</a> — {}',
            reverse("admin:endpoints_endpoint_change", args=[delivery.endpoint_id]),
            delivery.endpoint.name,
            delivery.endpoint.url,
        )

    @admin.display(description=gettext_lazy("Request body (identical on every attempt)"))
    def request_body(self, delivery):
        if delivery.event.is_expunged:
            return format_html('<p id="payload-erased">{}</p>', delivery.event.expunged_notice())
        return format_html("<pre>{}</pre>", pretty_json(json.loads(delivery.event.body)))

    @admin.display(description=gettext_lazy("Last request as curl"))
    def curl(self, delivery):
        attempt = delivery.attempts.order_by("-number").first()
        if attempt is None:
            return _("not sent yet")
        if delivery.event.is_expunged:
            return delivery.event.expunged_notice()
        parts = ["curl", "-X", "POST", attempt.request_url]
        for name, value in attempt.request_headers.items():
            parts += ["-H", f"{name}: {value}"]
        parts += ["--data-raw", delivery.event.body]
        command = " ".join(shlex.quote(p) for p in parts)
        return format_html(
            '<pre id="curl-command" style="white-space:pre-wrap">{}</pre>'
            '<button type="button" class="button" onclick="navigator.clipboard.writeText('
            "document.getElementById('curl-command').textContent)\">{}</button>"
            '<p class="help">{}</p>',
            command,
            _("Copy"),
            _(
                "Secrets are masked (••••): the receiver's signature check will refuse this "
                "copy; it shows exactly what was sent otherwise."
            ),
        )

    @admin.action(
        description=gettext_lazy("Retry selected deliveries now…"), permissions=["replay"]
    )
    def retry_now(self, request, queryset):
        held = _held_endpoints(queryset)
        return self._confirm_bulk(
            request,
            queryset,
            action="retry_now",
            verb=_("Retry now"),
            explanation=_(
                "Failed, dead, cancelled and waiting deliveries are sent again now with "
                "the same webhook-id; succeeded and in-flight ones are skipped."
            )
            + (" " + held if held else ""),
            run=lambda qs: deliveries_retry_now(qs, by=actor(request)),
            done=_(
                "Queued {n} of {total} selected deliveries; {skipped} skipped "
                "(succeeded or in flight)."
            )
            + (" " + held if held else ""),
        )

    @admin.action(description=gettext_lazy("Cancel selected deliveries…"), permissions=["replay"])
    def cancel(self, request, queryset):
        return self._confirm_bulk(
            request,
            queryset,
            action="cancel",
            verb=_("Cancel"),
            explanation=_(
                "Waiting deliveries (pending, retrying) are cancelled and will not be "
                "sent; others are left as they are."
            ),
            run=lambda qs: deliveries_cancel(qs, by=actor(request)),
            done=_(
                "Cancelled {n} of {total} selected deliveries; {skipped} skipped (not waiting)."
            ),
        )

    def _confirm_bulk(self, request, queryset, *, action, verb, explanation, run, done):
        total = queryset.count()
        if request.POST.get("confirm") == "yes":
            n = run(queryset)
            self.message_user(
                request, done.format(n=n, total=total, skipped=total - n), messages.SUCCESS
            )
            return None
        return TemplateResponse(
            request,
            "admin/deliveries/delivery/confirm_bulk.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": _("%(verb)s: %(total)s deliveries") % {"verb": verb, "total": total},
                "explanation": explanation,
                "action": action,
                "verb": verb,
                "deliveries": queryset.select_related("endpoint")[:50],
                "total": total,
                "selected": queryset.values_list("pk", flat=True),
            },
        )


def short_id(public_id: str):
    """`dlv_…HGCZ49` in a list cell (the whole id on hover; search takes the whole id)."""
    prefix, _sep, rest = public_id.partition("_")
    return format_html('<span class="wh-id" title="{}">{}_…{}</span>', public_id, prefix, rest[-6:])


def _held_endpoints(queryset) -> str:
    """For a bulk retry: how many of the selected deliveries' endpoints hold them back."""
    endpoint_ids = set(queryset.order_by().values_list("endpoint_id", flat=True)[:10_000])
    off = Endpoint.objects.filter(pk__in=endpoint_ids, enabled=False).count()
    open_circuits = (
        EndpointHealth.objects.filter(pk__in=endpoint_ids)
        .exclude(circuit_state=CircuitState.CLOSED)
        .count()
    )
    if not off and not open_circuits:
        return ""
    return _(
        "%(open)s of their endpoints have an open circuit and %(off)s are switched off: "
        "those deliveries wait for the probe or the switch (see each endpoint)."
    ) % {"open": open_circuits, "off": off}


def _circuit_notice(delivery: Delivery) -> str:
    """What "retry now" really does when the endpoint's circuit is open, or it is off."""
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        return _("The endpoint is switched off: the delivery waits until it is switched on again.")
    health = EndpointHealth.objects.filter(pk=endpoint.pk).first()
    if health is None or health.circuit_state == CircuitState.CLOSED:
        return ""
    if health.circuit_state == CircuitState.HALF_OPEN:
        return _(
            "The endpoint's circuit is half-open: a probe is being sent; this delivery goes "
            "when it succeeds."
        )
    return _(
        "The endpoint's circuit is open (next probe %(when)s): this delivery waits for the "
        'probe to succeed. Use "Probe now" on the endpoint to try at once.'
    ) % {"when": when(health.circuit_retry_at)}
