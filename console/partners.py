"""Support console for partners and their API tokens."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db.models import Count, OuterRef, Subquery
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone, translation
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from console.health_columns import DAY, FINISHED_OR_FAILING, health_cell
from deliveries.models import Delivery, DeliveryStatus
from endpoints.models import ApiToken, Endpoint, Partner
from endpoints.services import api_token_create, api_tokens_revoke
from portal.services import MAX_LINK_MINUTES, portal_link_create
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
    change_form_template = "portal/admin/partner_change_form.html"

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

    @admin.display(description=gettext_lazy("Endpoints"), ordering="n_endpoints")
    def endpoint_count(self, partner):
        url = reverse("admin:endpoints_endpoint_changelist") + f"?partner__id__exact={partner.pk}"
        return format_html('<a href="{}">{}</a>', url, partner.n_endpoints)

    @admin.display(description=gettext_lazy("24 h success"))
    def health_24h(self, partner):
        return health_cell(partner.ok_24h, partner.total_24h)

    # -- portal sign-in links ("Copy portal link", "Email portal link to the contact")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/portal-link/",
                view(self.portal_link_view),
                name="endpoints_partner_portal_link",
            ),
            *super().get_urls(),
        ]

    def has_portal_link_permission(self, request) -> bool:
        return request.user.has_perm("portal.send_portal_link")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_portal_link": self.has_portal_link_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def portal_link_view(self, request, pk):
        """Create a single-use portal link for the partner: shown once to copy, or mailed
        to the partner's contact address."""
        partner = get_object_or_404(Partner, pk=pk)
        if not self.has_view_permission(request, partner) or not (
            self.has_portal_link_permission(request)
        ):
            raise PermissionDenied
        params = request.POST if request.method == "POST" else request.GET
        send = params.get("action") == "email"
        form = PortalLinkForm(request.POST or None)
        back = reverse("admin:endpoints_partner_change", args=[partner.pk])
        if request.method == "POST" and form.is_valid():
            if send and not partner.contact_email:
                form.add_error(None, _("This partner has no contact e-mail address."))
            else:
                try:
                    link, url = portal_link_create(
                        partner,
                        minutes=form.cleaned_data["minutes"],
                        by=actor(request),
                        label=partner.contact_email if send else "",
                        base_url=request.build_absolute_uri("/").rstrip("/"),
                    )
                except ValidationError as exc:
                    form.add_error(None, exc.messages)
                else:
                    if send:
                        return self._mail_portal_link(request, partner, link, url, back)
                    return show_once(
                        request,
                        title=_("Portal link"),
                        label=_("Sign-in link to the portal of %(name)s") % {"name": partner.name},
                        value=url,
                        back_url=back,
                        note=_(
                            "It works once, until %(when)s. Give it to the partner now: only "
                            "its hash is stored."
                        )
                        % {"when": timezone.localtime(link.expires_at).strftime("%Y-%m-%d %H:%M")},
                    )
        title = (
            _("Email a portal link to %(email)s") % {"email": partner.contact_email or "—"}
            if send
            else _("Copy a portal link for %(name)s") % {"name": partner.name}
        )
        return TemplateResponse(
            request,
            "portal/admin/portal_link.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "original": partner,
                "title": title,
                "form": form,
                "action": "email" if send else "copy",
                "button": _("Send the e-mail") if send else _("Create the link"),
            },
        )

    def _mail_portal_link(self, request, partner, link, url, back):
        """One e-mail in Korean and English: the contact's language is not known."""
        parts = []
        for language in ("ko", "en"):
            with translation.override(language):
                parts.append(
                    render_to_string(
                        "portal/email/portal_link.txt",
                        {"partner": partner, "url": url, "expires_at": link.expires_at},
                    ).strip()
                )
        with translation.override("ko"):
            subject_ko = _("Your webhook settings: sign-in link")
        with translation.override("en"):
            subject_en = _("Your webhook settings: sign-in link")
        send_mail(
            f"{subject_ko} / {subject_en}",
            "\n\n----------------------------------------\n\n".join(parts),
            None,
            [partner.contact_email],
        )
        self.message_user(
            request,
            _("A portal sign-in link was e-mailed to %(email)s.")
            % {"email": partner.contact_email},
            messages.SUCCESS,
        )
        return HttpResponseRedirect(back)


class PortalLinkForm(forms.Form):
    minutes = forms.IntegerField(
        label=gettext_lazy("Valid for (minutes)"),
        min_value=1,
        max_value=MAX_LINK_MINUTES,
        initial=lambda: settings.WEBHOOKHUB_PORTAL_LINK_MINUTES,
        help_text=gettext_lazy("The link signs in once, within this time."),
    )


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

    @admin.display(description=gettext_lazy("Status"))
    def status(self, token):
        if token.revoked_at:
            return _("revoked")
        return _("active") if token.is_usable else _("expired")

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

    @admin.action(description=gettext_lazy("Revoke selected tokens"))
    def revoke(self, request, queryset):
        n = api_tokens_revoke(queryset, by=actor(request))
        self.message_user(request, _("Revoked %(n)s token(s).") % {"n": n}, messages.SUCCESS)
