"""Events are history: read-only, searchable, replayable. Event types are a catalog."""

import json
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, OuterRef, Q, Subquery
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.admin import audit_trail
from deliveries.explain import event_routing
from deliveries.models import Delivery
from deliveries.services import event_replay
from endpoints.models import Endpoint, Partner
from events.models import Event, EventType
from events.selectors import endpoint_ids_for_event, schema_check
from webhookhub.admin_utils import HistoryAdminMixin, ReasonForm, actor

PAYLOAD_SEARCH_WINDOW = timedelta(days=1)


@admin.register(EventType)
class EventTypeAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "schema_mode", "schema_version", "archived")
    list_filter = (("archived_at", admin.EmptyFieldListFilter), "schema_mode")
    search_fields = ("name", "description")
    readonly_fields = ("created_at", "archived_at", "example_pretty", "schema_version")
    fields = (
        "name",
        "description",
        "schema_mode",
        "schema",
        "schema_version",
        "example",
        "example_pretty",
        "archived_at",
        "created_at",
    )
    actions = ["archive", "unarchive"]

    @admin.display(boolean=True, description=gettext_lazy("Archived"), ordering="archived_at")
    def archived(self, event_type):
        return event_type.archived_at is not None

    @admin.display(description=gettext_lazy("Example payload"))
    def example_pretty(self, event_type):
        if event_type.example is None:
            return "–"
        return format_html("<pre>{}</pre>", json.dumps(event_type.example, indent=2))

    def has_delete_permission(self, request, obj=None):
        # History points at its type: a type with events is archived, never deleted.
        if obj is not None and obj.events.exists():
            return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request, queryset):
        unused = queryset.filter(events__isnull=True)
        kept = queryset.count() - unused.count()
        unused.delete()
        if kept:
            self.message_user(
                request,
                _("%(n)s type(s) with events were kept: archive them instead.") % {"n": kept},
                messages.WARNING,
            )

    @admin.action(
        description=gettext_lazy("Archive selected types (no new events)"), permissions=["change"]
    )
    def archive(self, request, queryset):
        n = queryset.filter(archived_at__isnull=True).update(archived_at=timezone.now())
        self.message_user(request, _("Archived %(n)s event type(s).") % {"n": n}, messages.SUCCESS)

    @admin.action(description=gettext_lazy("Restore selected types"), permissions=["change"])
    def unarchive(self, request, queryset):
        n = queryset.filter(archived_at__isnull=False).update(archived_at=None)
        self.message_user(request, _("Restored %(n)s event type(s).") % {"n": n}, messages.SUCCESS)


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fields = (
        "link",
        "endpoint",
        "status",
        "attempt_count",
        "last_status_code",
        "last_error",
        "next_attempt_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("endpoint")

    @admin.display(description=gettext_lazy("Delivery"))
    def link(self, delivery):
        from django.urls import reverse

        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:deliveries_delivery_change", args=[delivery.pk]),
            delivery.public_id,
        )


class ReplayForm(ReasonForm):
    field_order = ("endpoints", "reason")

    endpoints = forms.ModelMultipleChoiceField(
        queryset=Endpoint.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label=gettext_lazy("Endpoints"),
        help_text=gettext_lazy("Leave all unticked to replay to every subscribed endpoint."),
    )


@admin.register(Event)
class EventAdmin(HistoryAdminMixin, admin.ModelAdmin):
    list_display = (
        "public_id",
        "event_type",
        "partner",
        "source",
        "created_at",
        "delivery_summary",
    )
    list_filter = ("event_type", "partner", "created_at")
    list_select_related = ("event_type", "partner")
    search_fields = ("=public_id", "=idempotency_key", "event_type__name", "partner__name")
    search_help_text = gettext_lazy(
        "An evt_… id, an idempotency key, a type or a partner. "
        "payload:TEXT searches the payloads of the last 24 hours."
    )
    readonly_fields = (
        "public_id",
        "event_type",
        "partner",
        "source",
        "idempotency_key",
        "tags",
        "occurred_at",
        "created_at",
        "traceparent",
        "routing",
        "envelope",
        "schema_check",
        "audit",
    )
    fields = readonly_fields
    inlines = [DeliveryInline]
    actions = ["replay"]
    change_form_template = "admin/events/event/change_form.html"

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/replay/", view(self.replay_one_view), name="events_event_replay"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        erased = (
            str(object_id).isdigit()
            and Event.objects.filter(pk=object_id, expunged_at__isnull=False).exists()
        )
        can_replay = self.has_replay_permission(request) and not erased
        extra_context = {**(extra_context or {}), "can_replay": can_replay}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description=gettext_lazy("Where it went, and why not elsewhere"))
    def routing(self, event):
        return format_html(
            "{}",
            render_to_string("admin/events/event/routing.html", {"routes": event_routing(event)}),
        )

    @admin.display(description=gettext_lazy("Audit trail"))
    def audit(self, event):
        return format_html("{}", audit_trail(event))

    def replay_one_view(self, request, pk):
        """The event page's Replay button: choose endpoints (or all), confirm."""
        if not self.has_replay_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        event = get_object_or_404(Event.objects.select_related("event_type", "partner"), pk=pk)
        form = ReplayForm(request.POST if request.method == "POST" else None)
        form.fields["endpoints"].queryset = Endpoint.objects.filter(
            pk__in=self._replay_candidates(event)
        ).select_related("partner")
        if event.is_expunged:
            self.message_user(request, self._erased(event), messages.ERROR)
            return redirect("admin:events_event_change", event.pk)
        if request.method == "POST" and form.is_valid():
            reason = form.cleaned_data["reason"]
            targets = list(form.cleaned_data["endpoints"]) or [None]
            try:
                queued = sum(
                    event_replay(event, endpoint=endpoint, by=actor(request), reason=reason)
                    for endpoint in targets
                )
            except ValidationError as exc:  # erased meanwhile
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
                return redirect("admin:events_event_change", event.pk)
            self.message_user(
                request,
                _("Replaying %(event)s: %(n)s deliveries queued.")
                % {"event": event.public_id, "n": queued},
                messages.SUCCESS if queued else messages.WARNING,
            )
            return redirect("admin:events_event_change", event.pk)
        return TemplateResponse(
            request,
            "admin/events/event/replay.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": _("Replay %(event)s") % {"event": event.public_id},
                "events": [event],
                "original": event,
                "form": form,
                "single": True,
            },
        )

    @staticmethod
    def _erased(event) -> str:
        return _("%(event)s cannot be replayed: %(notice)s") % {
            "event": event.public_id,
            "notice": event.expunged_notice(),
        }

    @staticmethod
    def _replay_candidates(event) -> set[int]:
        candidates = set(event.deliveries.values_list("endpoint_id", flat=True))
        candidates |= set(
            endpoint_ids_for_event(event.event_type.name, event.partner, json.loads(event.body))
        )
        return candidates

    def get_queryset(self, request):
        # Correlated subqueries: evaluated for the rows on the page only, not the table.
        per_event = Delivery.objects.filter(event=OuterRef("pk")).order_by().values("event")
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_deliveries=Subquery(per_event.annotate(n=Count("pk")).values("n")[:1]),
                n_ok=Subquery(
                    per_event.filter(status="succeeded").annotate(n=Count("pk")).values("n")[:1]
                ),
            )
        )

    def get_search_results(self, request, queryset, search_term):
        """Each kind of term becomes an indexed lookup: ids and keys exactly, type and
        partner names through the small catalog tables, payload text within 7 days."""
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.startswith("payload:"):
            text = term[len("payload:") :].strip()
            since = timezone.now() - PAYLOAD_SEARCH_WINDOW
            return queryset.filter(created_at__gte=since, body__icontains=text), False
        if term.startswith("evt_"):
            return queryset.filter(public_id=term), False
        types = list(EventType.objects.filter(name__icontains=term).values_list("pk", flat=True))
        partners = list(Partner.objects.filter(name__icontains=term).values_list("pk", flat=True))
        return queryset.filter(
            Q(idempotency_key=term) | Q(event_type_id__in=types) | Q(partner_id__in=partners)
        ), False

    @admin.display(description=gettext_lazy("Deliveries"))
    def delivery_summary(self, event):
        if not event.n_deliveries:
            return _("none")
        return _("%(ok)s/%(total)s succeeded") % {
            "ok": event.n_ok or 0,
            "total": event.n_deliveries,
        }

    @admin.display(description=gettext_lazy("Envelope as sent"))
    def envelope(self, event):
        if event.is_expunged:
            return format_html(
                '<p id="payload-erased"><strong>{}</strong> {}</p>',
                event.expunged_notice(),
                _("By %(who)s. It can no longer be replayed.") % {"who": event.expunged_by},
            )
        pretty = json.dumps(json.loads(event.body), indent=2, ensure_ascii=False)
        return format_html(
            "<pre>{}</pre><details><summary>{}</summary><pre>{}</pre></details>",
            pretty,
            _("Exact bytes (%(n)s bytes)") % {"n": len(event.body.encode())},
            event.body,
        )

    @admin.display(description=gettext_lazy("Schema check"))
    def schema_check(self, event):
        return format_html(
            "{}", render_to_string("admin/events/event/schema_check.html", schema_check(event))
        )

    @admin.action(description=gettext_lazy("Replay selected events…"), permissions=["replay"])
    def replay(self, request, queryset):
        events = list(queryset.select_related("event_type", "partner")[:100])
        for event in [e for e in events if e.is_expunged]:
            self.message_user(request, self._erased(event), messages.WARNING)
        events = [e for e in events if not e.is_expunged]
        if not events:
            return None
        candidates = set()
        for event in events:
            candidates |= self._replay_candidates(event)
        form = ReplayForm(request.POST if "confirm" in request.POST else None)
        form.fields["endpoints"].queryset = Endpoint.objects.filter(
            pk__in=candidates
        ).select_related("partner")
        if "confirm" in request.POST and form.is_valid():
            chosen = list(form.cleaned_data["endpoints"])
            queued, refused = 0, 0
            for event in events:
                targets = [e for e in chosen if e.pk in candidates] or [None]
                for endpoint in targets:
                    if (
                        endpoint is not None
                        and event.partner_id
                        and endpoint.partner_id != event.partner_id
                    ):
                        refused += 1
                        continue
                    try:
                        queued += event_replay(
                            event,
                            endpoint=endpoint,
                            by=actor(request),
                            reason=form.cleaned_data["reason"],
                        )
                    except ValidationError as exc:  # erased meanwhile
                        self.message_user(request, " ".join(exc.messages), messages.WARNING)
                        break
            if refused:
                text = _(
                    "Replaying: %(queued)s deliveries queued for %(events)s event(s) "
                    "(%(refused)s skipped: endpoint of another partner)."
                )
            else:
                text = _("Replaying: %(queued)s deliveries queued for %(events)s event(s).")
            self.message_user(
                request,
                text % {"queued": queued, "events": len(events), "refused": refused},
                messages.SUCCESS,
            )
            return None
        return TemplateResponse(
            request,
            "admin/events/event/replay.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": _("Replay events"),
                "events": events,
                "form": form,
                "selected": [e.pk for e in events],
            },
        )
