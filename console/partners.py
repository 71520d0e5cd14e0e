"""Support console for partners and their API tokens."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, OuterRef, Subquery
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from console.health_columns import DAY, FINISHED_OR_FAILING, health_cell
from deliveries.models import Delivery, DeliveryStatus
from endpoints.models import ApiToken, Endpoint, Partner
from endpoints.services import api_token_create, api_tokens_revoke
from webhookhub.admin_utils import actor, show_once

# --- Partners -----------------------------------------------------------------------


class EndpointInline(admin.TabularInline):
    model = Endpoint
    fields = ("name", "url", "enabled", "circuit", "disabled_reason")
    readonly_fields = fields
    show_change_link = True
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("health")  # one query, not N

    @admin.display(description=gettext_lazy("Circuit"))
    def circuit(self, endpoint):
        health = getattr(endpoint, "health", None)
        return health.get_circuit_state_display() if health else "–"


class ApiTokenInline(admin.TabularInline):
    model = ApiToken
    fields = ("prefix", "name", "role", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    list_display = ("name", "contact_email", "is_active", "endpoint_count", "health_24h")
    list_filter = ("is_active",)
    search_fields = ("name", "=public_id", "contact_email")
    readonly_fields = ("public_id", "created_at")
    inlines = [EndpointInline, ApiTokenInline]
    show_full_result_count = False

    def get_queryset(self, request):
        since = timezone.now() - DAY
        per_partner = (
            Delivery.objects.filter(endpoint__partner=OuterRef("pk"), created_at__gte=since)
            .order_by()
            .values("endpoint__partner")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_endpoints=Count("endpoints", distinct=True),
                ok_24h=Subquery(
                    per_partner.filter(status=DeliveryStatus.SUCCEEDED)
                    .annotate(n=Count("pk"))
                    .values("n")[:1]
                ),
                total_24h=Subquery(
                    per_partner.filter(FINISHED_OR_FAILING).annotate(n=Count("pk")).values("n")[:1]
                ),
            )
        )

    @admin.display(description="Endpoints", ordering="n_endpoints")
    def endpoint_count(self, partner):
        url = reverse("admin:endpoints_endpoint_changelist") + f"?partner__id__exact={partner.pk}"
        return format_html('<a href="{}">{}</a>', url, partner.n_endpoints)

    @admin.display(description="24 h success")
    def health_24h(self, partner):
        return health_cell(partner.ok_24h, partner.total_24h)


# --- API tokens ---------------------------------------------------------------------


class ApiTokenAddForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("role", "partner", "name", "expires_at")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "role", "partner", "created_at", "last_used_at", "status")
    list_filter = ("role", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("prefix", "name", "partner__name")
    list_select_related = ("partner",)
    actions = ["revoke"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiTokenAddForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return (
            "prefix",
            "role",
            "partner",
            "created_at",
            "created_by",
            "last_used_at",
            "revoked_at",
        )

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("role", "partner", "name", "expires_at")
        return (
            "prefix",
            "name",
            "role",
            "partner",
            "created_at",
            "created_by",
            "last_used_at",
            "expires_at",
            "revoked_at",
        )

    @admin.display(description="Status")
    def status(self, token):
        if token.revoked_at:
            return "revoked"
        return "active" if token.is_usable else "expired"

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        token, raw = api_token_create(
            role=obj.role, partner=obj.partner, name=obj.name, by=actor(request)
        )
        if obj.expires_at:
            ApiToken.objects.filter(pk=token.pk).update(expires_at=obj.expires_at)
        obj.pk, obj.prefix = token.pk, token.prefix
        request._new_api_token = raw

    def response_add(self, request, obj, post_url_continue=None):
        return show_once(
            request,
            title=_("New API token"),
            label=_("API token %(prefix)s… (%(role)s)")
            % {"prefix": obj.prefix, "role": obj.get_role_display()},
            value=request._new_api_token,
            back_url=reverse("admin:endpoints_apitoken_change", args=[obj.pk]),
            note=_("Send it as `Authorization: Bearer <token>`. Only its hash is stored."),
        )

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        n = api_tokens_revoke(queryset, by=actor(request))
        self.message_user(request, f"Revoked {n} token(s).", messages.SUCCESS)
