"""Deliveries and their attempts: read-only history, with retry and cancel."""

import json
import shlex

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus
from deliveries.services import deliveries_cancel, deliveries_retry_now
from events.models import Event
from webhookhub.admin_utils import HistoryAdminMixin, actor

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

    @admin.display(description="Outcome")
    def outcome(self, attempt):
        colour, label = ("#2e7d32", "succeeded") if attempt.succeeded else ("#ba2121", "failed")
        return format_html('<strong style="color:{}">{}</strong>', colour, label)

    @admin.display(description="Request headers (secrets masked)")
    def request_headers_pretty(self, attempt):
        return format_html("<pre>{}</pre>", pretty_json(attempt.request_headers))

    @admin.display(description="Response headers")
    def response_headers_pretty(self, attempt):
        return format_html("<pre>{}</pre>", pretty_json(attempt.response_headers))

    @admin.display(description="Response body")
    def response_body_pretty(self, attempt):
        note = " (truncated at 20 KB)" if attempt.response_body_truncated else ""
        return format_html(
            '<pre style="white-space:pre-wrap">{}</pre>{}', attempt.response_body or "(empty)", note
        )


class PartnerFilter(admin.RelatedFieldListFilter):
    pass


@admin.register(Delivery)
class DeliveryAdmin(HistoryAdminMixin, admin.ModelAdmin):
    list_display = (
        "public_id",
        "status_badge",
        "event_link",
        "event_type",
        "endpoint",
        "partner",
        "attempt_count",
        "last_status_code",
        "last_error_short",
        "next_attempt_at",
        "created_at",
    )
    list_filter = (
        "status",
        "endpoint",
        ("endpoint__partner", admin.RelatedFieldListFilter),
        ("event__event_type", admin.RelatedFieldListFilter),
        "created_at",
    )
    list_select_related = ("event__event_type", "endpoint__partner")
    search_fields = ("=public_id", "=event__public_id")
    search_help_text = "A dlv_… or evt_… id."
    readonly_fields = (
        "public_id",
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
    )
    fields = readonly_fields
    inlines = [AttemptInline]
    actions = ["retry_now", "cancel"]

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

    @admin.display(description="Status", ordering="status")
    def status_badge(self, delivery):
        return format_html(
            '<strong style="color:{}">{}</strong>',
            STATUS_COLOURS.get(delivery.status, "#444"),
            delivery.get_status_display(),
        )

    @admin.display(description="Event")
    def event_link(self, delivery):
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:events_event_change", args=[delivery.event_id]),
            delivery.event.public_id,
        )

    @admin.display(description="Endpoint")
    def endpoint_link(self, delivery):
        return format_html(
            '<a href="{}">{}</a> — {}',
            reverse("admin:endpoints_endpoint_change", args=[delivery.endpoint_id]),
            delivery.endpoint.name,
            delivery.endpoint.url,
        )

    @admin.display(description="Type")
    def event_type(self, delivery):
        return delivery.event.event_type.name

    @admin.display(description="Partner")
    def partner(self, delivery):
        return delivery.endpoint.partner.name

    @admin.display(description="Last error")
    def last_error_short(self, delivery):
        return (
            (delivery.last_error[:60] + "…")
            if len(delivery.last_error) > 60
            else delivery.last_error
        )

    @admin.display(description="Request body (identical on every attempt)")
    def request_body(self, delivery):
        return format_html("<pre>{}</pre>", pretty_json(json.loads(delivery.event.body)))

    @admin.display(description="Last request as curl")
    def curl(self, delivery):
        attempt = delivery.attempts.order_by("-number").first()
        if attempt is None:
            return "not sent yet"
        parts = ["curl", "-X", "POST", attempt.request_url]
        for name, value in attempt.request_headers.items():
            parts += ["-H", f"{name}: {value}"]
        parts += ["--data-raw", delivery.event.body]
        command = " ".join(shlex.quote(p) for p in parts)
        return format_html(
            '<pre id="curl-command" style="white-space:pre-wrap">{}</pre>'
            '<button type="button" class="button" onclick="navigator.clipboard.writeText('
            "document.getElementById('curl-command').textContent)\">Copy</button>"
            '<p class="help">Secrets are masked (••••): the receiver\'s signature check will '
            "refuse this copy; it shows exactly what was sent otherwise.</p>",
            command,
        )

    @admin.action(description="Retry selected deliveries now…", permissions=["replay"])
    def retry_now(self, request, queryset):
        return self._confirm_bulk(
            request,
            queryset,
            action="retry_now",
            verb="Retry now",
            explanation="Failed, dead, cancelled and waiting deliveries are sent again now with "
            "the same webhook-id; succeeded and in-flight ones are skipped.",
            run=lambda qs: deliveries_retry_now(qs, by=actor(request)),
            done="Queued {n} of {total} selected deliveries; {skipped} skipped "
            "(succeeded or in flight).",
        )

    @admin.action(description="Cancel selected deliveries…", permissions=["replay"])
    def cancel(self, request, queryset):
        return self._confirm_bulk(
            request,
            queryset,
            action="cancel",
            verb="Cancel",
            explanation="Waiting deliveries (pending, retrying) are cancelled and will not be "
            "sent; others are left as they are.",
            run=lambda qs: deliveries_cancel(qs, by=actor(request)),
            done="Cancelled {n} of {total} selected deliveries; {skipped} skipped (not waiting).",
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
                "title": f"{verb}: {total} deliveries",
                "explanation": explanation,
                "action": action,
                "verb": verb,
                "deliveries": queryset.select_related("endpoint")[:50],
                "total": total,
                "selected": queryset.values_list("pk", flat=True),
            },
        )
