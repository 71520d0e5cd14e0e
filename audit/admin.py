"""The audit trail in the admin: a filterable, read-only list, and the trail of one
object for its own page."""

from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from audit.models import AuditEntry
from audit.services import describe, entry_text
from webhookhub.admin_utils import CappedCountPaginator

OBJECT_TRAIL = 20  # entries shown on an object's page


class ActorFilter(admin.SimpleListFilter):
    """Who acted, by surface: people in the admin, API tokens, the portal, commands."""

    title = _("who")
    parameter_name = "surface"

    def lookups(self, request, model_admin):
        return [
            ("admin:", _("Support (admin)")),
            ("api:", _("API tokens")),
            ("portal:", _("Partner portal")),
            ("command:", _("Commands")),
            ("system", _("webhookhub itself")),
        ]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(actor__startswith=self.value())
        return queryset


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "actor", "action", "object_link", "reason", "count")
    list_filter = (ActorFilter, "action", "object_type", "partner", "at")
    search_fields = ("=actor", "=object_id", "reason")
    search_help_text = _(
        "A user (admin:sam), a token (api:whk_…), an object id, or words of a reason."
    )
    list_select_related = ("partner",)
    paginator = CappedCountPaginator
    show_full_result_count = False
    date_hierarchy = None
    readonly_fields = (
        "at",
        "actor",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "partner",
        "reason",
        "count",
        "details",
    )
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("object"), ordering="object_id")
    def object_link(self, entry):
        url = object_url(entry.object_type, entry.object_id)
        label = f"{entry.object_repr or entry.object_id}"
        if url is None:
            return f"{entry.object_type} {label}"
        from django.utils.html import format_html

        return format_html('<a href="{}">{}</a>', url, label)


def object_url(object_type: str, object_id: str) -> str | None:
    """The admin page of the object an entry is about (a list filtered to it)."""
    lists = {
        "endpoint": "endpoints_endpoint",
        "delivery": "deliveries_delivery",
        "event": "events_event",
        "api_token": "endpoints_apitoken",
        "event_type": "events_eventtype",
        "partner": "endpoints_partner",
    }
    if object_type not in lists:
        return None
    model = lists[object_type]
    return f"{reverse(f'admin:{model}_changelist')}?{urlencode({'q': object_id})}"


def audit_trail(obj) -> str:
    """The last entries about `obj`, for its admin page, with a link to all of them."""
    object_type, object_id, _label, _partner = describe(obj)
    entries = list(
        AuditEntry.objects.filter(object_type=object_type, object_id=object_id).order_by(
            "-at", "-id"
        )[:OBJECT_TRAIL]
    )
    url = reverse("admin:audit_auditentry_changelist") + "?" + urlencode({"q": object_id})
    return render_to_string(
        "admin/audit/trail.html",
        {"entries": [(e, entry_text(e)) for e in entries], "all_url": url},
    )
