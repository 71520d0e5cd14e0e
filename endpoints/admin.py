"""Support console for partners, endpoints and API tokens.

Views validate, call a service from endpoints.services / deliveries.services, and tell
the user what happened. Each support action has its own permission.
"""

import json
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme

from deliveries.models import Delivery, DeliveryStatus
from deliveries.services import endpoint_failed_since, endpoint_recover, endpoint_send_test
from endpoints.models import ApiToken, CircuitState, Endpoint, Partner, Subscription
from endpoints.services import (
    api_token_create,
    endpoint_disable,
    endpoint_enable,
    endpoint_regenerate_token,
    endpoint_rotate_secret,
    endpoint_save,
)
from events.filters import FilterError, compile_filter
from webhookhub.admin_utils import CappedCountPaginator, actor, show_once

DAY = timedelta(hours=24)


def _recent_count(status_q: Q, since):
    """Subquery: deliveries of the outer endpoint created since `since` matching `status_q`
    (an index-only range on delivery_endpoint_status)."""
    return Subquery(
        Delivery.objects.filter(status_q, endpoint=OuterRef("pk"), created_at__gte=since)
        .order_by()
        .values("endpoint")
        .annotate(n=Count("pk"))
        .values("n")[:1]
    )


FINISHED_OR_FAILING = Q(
    status__in=(DeliveryStatus.SUCCEEDED, DeliveryStatus.RETRYING, DeliveryStatus.DEAD)
)


def health_cell(ok, total):
    if not total:
        return "–"
    rate = 100.0 * (ok or 0) / total
    colour = "#2e7d32" if rate >= 99 else ("#b26a00" if rate >= 90 else "#ba2121")
    return format_html(
        '<span style="color:{}">{} %</span> <small>({}/{})</small>',
        colour,
        f"{rate:.1f}",
        ok or 0,
        total,
    )


# --- Partners -----------------------------------------------------------------------


class EndpointInline(admin.TabularInline):
    model = Endpoint
    fields = ("name", "url", "enabled", "circuit_state", "disabled_reason")
    readonly_fields = fields
    show_change_link = True
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


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
            title="New API token",
            label=f"API token {obj.prefix}… ({obj.get_role_display()})",
            value=request._new_api_token,
            back_url=reverse("admin:endpoints_apitoken_change", args=[obj.pk]),
            note="Send it as `Authorization: Bearer <token>`. Only its hash is stored.",
        )

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        n = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {n} token(s).", messages.SUCCESS)


# --- Endpoints ----------------------------------------------------------------------


class SubscriptionForm(forms.ModelForm):
    class Meta:
        model = Subscription
        fields = ("event_type", "filter")
        widgets = {
            "filter": forms.Textarea(attrs={"rows": 2, "cols": 60, "class": "vLargeTextField"})
        }


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    form = SubscriptionForm
    extra = 1
    fields = ("event_type", "filter")


class EndpointForm(forms.ModelForm):
    class Meta:
        model = Endpoint
        fields = (
            "partner",
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
        widgets = {
            "headers": forms.Textarea(attrs={"rows": 3}),
            "retry_policy": forms.Textarea(attrs={"rows": 3}),
            "filter": forms.Textarea(attrs={"rows": 3}),
        }


class CircuitFilter(admin.SimpleListFilter):
    title = "circuit"
    parameter_name = "circuit_state__in"

    def lookups(self, request, model_admin):
        return [("open,half_open", "Open or probing"), ("closed", "Closed")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(circuit_state__in=self.value().split(","))
        return queryset


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    change_form_template = "admin/endpoints/endpoint/change_form.html"
    list_display = (
        "switch",
        "name",
        "partner",
        "url",
        "subscribed",
        "health_24h",
        "last_delivery",
        "circuit",
        "disabled_reason",
    )
    list_display_links = ("name",)
    list_filter = ("enabled", CircuitFilter, "ordered", "partner")
    search_fields = ("name", "=public_id", "url", "partner__name")
    list_select_related = ("partner",)
    readonly_fields = (
        "public_id",
        "enabled",
        "disabled_at",
        "disabled_kind",
        "disabled_by",
        "disabled_reason",
        "circuit_state",
        "consecutive_failures",
        "failing_since",
        "circuit_retry_at",
        "bearer_token",
        "signing_secrets",
        "created_at",
        "updated_at",
    )
    inlines = [SubscriptionInline]
    actions = ["enable_selected", "disable_selected"]
    show_full_result_count = False
    paginator = CappedCountPaginator
    fieldsets = (
        (None, {"fields": ("public_id", "partner", "name", "url", "description")}),
        (
            "On / Off",
            {
                "fields": (
                    "enabled",
                    "disabled_reason",
                    "disabled_kind",
                    "disabled_by",
                    "disabled_at",
                )
            },
        ),
        (
            "Delivery",
            {
                "fields": (
                    "headers",
                    "timeout_seconds",
                    "retry_policy",
                    "rate_limit_per_second",
                    "max_in_flight",
                    "ordered",
                    "filter",
                )
            },
        ),
        ("Credentials", {"fields": ("signing_secrets", "bearer_token")}),
        (
            "Health",
            {
                "fields": (
                    "circuit_state",
                    "consecutive_failures",
                    "failing_since",
                    "circuit_retry_at",
                )
            },
        ),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    # -- permissions for the support actions (admin.action(permissions=[...]))
    def has_toggle_permission(self, request):
        return request.user.has_perm("endpoints.toggle_endpoint")

    def has_rotate_permission(self, request):
        return request.user.has_perm("endpoints.rotate_credentials")

    def has_test_permission(self, request):
        return request.user.has_perm("endpoints.send_test_event")

    def has_replay_permission(self, request):
        return request.user.has_perm("deliveries.replay_delivery")

    def get_queryset(self, request):
        since = timezone.now() - DAY
        latest = Delivery.objects.filter(endpoint=OuterRef("pk")).order_by("-created_at")
        return (
            super()
            .get_queryset(request)
            .prefetch_related("subscriptions")
            .annotate(
                ok_24h=_recent_count(Q(status=DeliveryStatus.SUCCEEDED), since),
                total_24h=_recent_count(FINISHED_OR_FAILING, since),
                last_status=Subquery(latest.values("status")[:1]),
                last_at=Subquery(latest.values("created_at")[:1]),
            )
        )

    # -- columns
    @admin.display(description="On/Off", ordering="enabled")
    def switch(self, endpoint):
        label = "On" if endpoint.enabled else "Off"
        colour = "#2e7d32" if endpoint.enabled else "#ba2121"
        url = reverse("admin:endpoints_endpoint_toggle", args=[endpoint.pk])
        # A submit button of the changelist form posting to the toggle view (it carries
        # the form's CSRF token): one click, no JavaScript.
        return format_html(
            '<button type="submit" formaction="{}" formmethod="post" class="button wh-toggle" '
            'id="toggle-{}" title="Switch {}" style="background:{};color:#fff">{}</button>',
            url,
            endpoint.public_id,
            "off" if endpoint.enabled else "on",
            colour,
            label,
        )

    @admin.display(description="Event types")
    def subscribed(self, endpoint):
        return ", ".join(s.event_type for s in endpoint.subscriptions.all()) or "–"

    @admin.display(description="24 h success")
    def health_24h(self, endpoint):
        return health_cell(endpoint.ok_24h, endpoint.total_24h)

    @admin.display(description="Last delivery", ordering="last_at")
    def last_delivery(self, endpoint):
        if not endpoint.last_at:
            return "–"
        return format_html(
            "{}<br><small>{}</small>",
            endpoint.last_status,
            timezone.localtime(endpoint.last_at).strftime("%Y-%m-%d %H:%M:%S"),
        )

    @admin.display(description="Circuit", ordering="circuit_state")
    def circuit(self, endpoint):
        if endpoint.circuit_state == CircuitState.CLOSED:
            return "closed"
        return format_html(
            '<strong style="color:#ba2121">{}</strong>', endpoint.get_circuit_state_display()
        )

    @admin.display(description="Bearer token")
    def bearer_token(self, endpoint):
        return ("••••" + endpoint.auth_token[-4:]) if endpoint.auth_token else "none"

    @admin.display(description="Signing secrets")
    def signing_secrets(self, endpoint):
        if not endpoint.pk:
            return "generated when saved, shown once"
        rows = [("current", "whsec_••••" + endpoint.signing_secret[-4:])]
        for old in endpoint.previous_secrets or []:
            rows.append(
                (
                    f"previous, signs until {old['expires_at'][:16]}",
                    "whsec_••••" + old["secret"][-4:],
                )
            )
        return format_html_join("", "<div>{}: <code>{}</code></div>", rows)

    # -- saving through the service
    def save_model(self, request, obj, form, change):
        new = obj.pk is None
        endpoint_save(obj, by=actor(request))
        if new:
            request._new_signing_secret = obj.signing_secret

    def response_add(self, request, obj, post_url_continue=None):
        return show_once(
            request,
            title="Endpoint created",
            label=f"Signing secret of {obj.name}",
            value=request._new_signing_secret,
            back_url=reverse("admin:endpoints_endpoint_change", args=[obj.pk]),
            note="Give it to the partner: they verify every webhook with it.",
        )

    # -- bulk actions
    @admin.action(description="Switch selected endpoints on", permissions=["toggle"])
    def enable_selected(self, request, queryset):
        n = sum(endpoint_enable(e, by=actor(request)) for e in queryset)
        self.message_user(request, f"Switched on {n} endpoint(s).", messages.SUCCESS)

    @admin.action(description="Switch selected endpoints off…", permissions=["toggle"])
    def disable_selected(self, request, queryset):
        if "reason" in request.POST:
            form = DisableForm(request.POST)
            if form.is_valid():
                n = sum(
                    endpoint_disable(
                        e,
                        by=actor(request),
                        reason=form.cleaned_data["reason"],
                        cancel_waiting=form.cleaned_data["cancel_waiting"],
                    )
                    for e in queryset
                )
                self.message_user(request, f"Switched off {n} endpoint(s).", messages.SUCCESS)
                return None
        else:
            form = DisableForm()
        return self._render(
            request,
            "admin/endpoints/endpoint/disable.html",
            {
                "title": "Switch endpoints off",
                "form": form,
                "endpoints": queryset,
                "action": "disable_selected",
                "selected": queryset.values_list("pk", flat=True),
            },
        )

    # -- per-endpoint support views
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/toggle/", view(self.toggle_view), name="endpoints_endpoint_toggle"),
            path("<int:pk>/disable/", view(self.disable_view), name="endpoints_endpoint_disable"),
            path(
                "<int:pk>/rotate-secret/", view(self.rotate_view), name="endpoints_endpoint_rotate"
            ),
            path(
                "<int:pk>/regenerate-token/",
                view(self.regenerate_view),
                name="endpoints_endpoint_regenerate",
            ),
            path("<int:pk>/send-test/", view(self.test_view), name="endpoints_endpoint_test"),
            path("<int:pk>/recover/", view(self.recover_view), name="endpoints_endpoint_recover"),
            path(
                "filter-preview/",
                view(self.filter_preview_view),
                name="endpoints_endpoint_filter_preview",
            ),
            *super().get_urls(),
        ]

    def _render(self, request, template, context):
        return TemplateResponse(
            request,
            template,
            {**self.admin_site.each_context(request), "opts": self.model._meta, **context},
        )

    def _endpoint(self, request, pk, permission):
        endpoint = get_object_or_404(Endpoint.objects.select_related("partner"), pk=pk)
        if not self.has_view_permission(request, endpoint) or not getattr(
            self, f"has_{permission}_permission"
        )(request):
            raise PermissionDenied
        return endpoint

    def _back(self, endpoint):
        return HttpResponseRedirect(reverse("admin:endpoints_endpoint_change", args=[endpoint.pk]))

    def toggle_view(self, request, pk):
        """One click from the list: on → off (reason: switched off from the list), off → on."""
        endpoint = self._endpoint(request, pk, "toggle")
        if request.method != "POST":
            return self._back(endpoint)
        if endpoint.enabled:
            endpoint_disable(endpoint, by=actor(request), reason=f"switched off by {request.user}")
            self.message_user(
                request, f"{endpoint.name} is off; its deliveries wait.", messages.SUCCESS
            )
        else:
            endpoint_enable(endpoint, by=actor(request))
            self.message_user(request, f"{endpoint.name} is on.", messages.SUCCESS)
        back = request.META.get("HTTP_REFERER", "")
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = reverse("admin:endpoints_endpoint_changelist")
        return HttpResponseRedirect(back)

    def disable_view(self, request, pk):
        endpoint = self._endpoint(request, pk, "toggle")
        form = DisableForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            endpoint_disable(
                endpoint,
                by=actor(request),
                reason=form.cleaned_data["reason"],
                cancel_waiting=form.cleaned_data["cancel_waiting"],
            )
            self.message_user(request, f"{endpoint.name} is off.", messages.SUCCESS)
            return self._back(endpoint)
        return self._render(
            request,
            "admin/endpoints/endpoint/disable.html",
            {
                "title": f"Switch {endpoint.name} off",
                "form": form,
                "endpoints": [endpoint],
                "original": endpoint,
            },
        )

    def rotate_view(self, request, pk):
        endpoint = self._endpoint(request, pk, "rotate")
        form = RotateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            secret = endpoint_rotate_secret(
                endpoint, by=actor(request), grace=timedelta(hours=form.cleaned_data["grace_hours"])
            )
            return show_once(
                request,
                title="Signing secret rotated",
                label=f"New signing secret of {endpoint.name}",
                value=secret,
                back_url=reverse("admin:endpoints_endpoint_change", args=[endpoint.pk]),
                note=f"The previous secret keeps signing for {form.cleaned_data['grace_hours']} h: "
                "every webhook in that window carries both signatures.",
            )
        return self._render(
            request,
            "admin/endpoints/endpoint/confirm.html",
            {
                "title": f"Rotate the signing secret of {endpoint.name}",
                "form": form,
                "original": endpoint,
                "button": "Rotate secret",
                "explanation": "A new secret is created now and shown once. The old one keeps "
                "signing alongside it during the grace period.",
            },
        )

    def regenerate_view(self, request, pk):
        endpoint = self._endpoint(request, pk, "rotate")
        if request.method == "POST":
            token = endpoint_regenerate_token(endpoint, by=actor(request))
            return show_once(
                request,
                title="Bearer token regenerated",
                label=f"New bearer token of {endpoint.name}",
                value=token,
                back_url=reverse("admin:endpoints_endpoint_change", args=[endpoint.pk]),
                note="It replaces the old token at once: webhooks now carry "
                "`Authorization: Bearer <this token>`.",
            )
        return self._render(
            request,
            "admin/endpoints/endpoint/confirm.html",
            {
                "title": f"Regenerate the bearer token of {endpoint.name}",
                "original": endpoint,
                "button": "Regenerate token",
                "explanation": "The old token stops being sent immediately.",
            },
        )

    def test_view(self, request, pk):
        endpoint = self._endpoint(request, pk, "test")
        attempt = None
        if request.method == "POST":
            attempt = endpoint_send_test(endpoint, by=actor(request))
        return self._render(
            request,
            "admin/endpoints/endpoint/test_result.html",
            {
                "title": f"Send a test event to {endpoint.name}",
                "original": endpoint,
                "attempt": attempt,
            },
        )

    def recover_view(self, request, pk):
        endpoint = self._endpoint(request, pk, "replay")
        form = RecoverForm(request.POST or None)
        count = None
        if request.method == "POST" and form.is_valid():
            since = form.cleaned_data["since"]
            if "confirm" in request.POST:
                try:
                    n = endpoint_recover(endpoint, since=since, by=actor(request))
                except ValidationError as exc:
                    form.add_error("since", exc.messages)
                else:
                    self.message_user(
                        request,
                        f"Re-sending {n} failed deliveries to {endpoint.name}.",
                        messages.SUCCESS,
                    )
                    return self._back(endpoint)
            else:
                count = endpoint_failed_since(endpoint, since).count()
        return self._render(
            request,
            "admin/endpoints/endpoint/recover.html",
            {
                "title": f"Recover failed deliveries of {endpoint.name}",
                "form": form,
                "original": endpoint,
                "count": count,
            },
        )

    def filter_preview_view(self, request):
        """Which of the last 100 events of a subscription's types its filter lets through."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        from events.selectors import events_matching_pattern

        pattern = request.GET.get("event_type", "").strip() or "*"
        raw = request.GET.get("filter", "").strip()
        error, rows = None, []
        try:
            spec = json.loads(raw) if raw else None
            predicate = compile_filter(spec)
        except (ValueError, FilterError) as exc:
            error = str(exc)
        else:
            for event in events_matching_pattern(pattern, limit=100):
                rows.append((event, predicate(json.loads(event.body))))
        return self._render(
            request,
            "admin/endpoints/endpoint/filter_preview.html",
            {
                "title": "Filter preview",
                "pattern": pattern,
                "filter": raw,
                "error": error,
                "rows": rows,
                "passed": sum(1 for _, ok in rows if ok),
            },
        )


class DisableForm(forms.Form):
    reason = forms.CharField(max_length=500, help_text="Shown to support and in the notice.")
    cancel_waiting = forms.BooleanField(
        required=False,
        label="Cancel its waiting deliveries",
        help_text="Otherwise they are kept and go out when the endpoint is switched on again.",
    )


class RotateForm(forms.Form):
    grace_hours = forms.IntegerField(
        min_value=0,
        max_value=168,
        initial=24,
        help_text="How long the old secret keeps signing (0–168 h).",
    )


class RecoverForm(forms.Form):
    since = forms.DateTimeField(
        help_text="Re-send every delivery to this endpoint that failed since this time "
        "(YYYY-MM-DD HH:MM).",
        initial=lambda: timezone.localtime(timezone.now() - DAY).strftime("%Y-%m-%d %H:%M"),
    )
