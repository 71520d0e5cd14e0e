"""Support console for endpoints (partners and API tokens: console/partners.py).

Views validate, call a service from endpoints.services / deliveries.services, and tell
the user what happened. Each support action has its own permission.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import model_ngettext
from django.db.models import OuterRef, Q, Subquery
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from audit.admin import audit_trail
from console import partners  # noqa: F401  (registers Partner and ApiToken)
from console.circuit_views import CIRCUIT_PERMISSION, CircuitViews
from console.endpoint_views import DisableForm, EndpointSupportViews
from console.forms import EndpointForm
from console.health_columns import DAY, FINISHED_OR_FAILING, health_cell, recent_count
from console.verification_views import VerificationViews
from deliveries.explain import endpoint_state
from deliveries.models import CircuitState, Delivery, DeliveryAttempt, DeliveryStatus
from endpoints import header_rules
from endpoints.crypto import seal, unseal
from endpoints.models import Endpoint, Subscription
from endpoints.services import endpoint_delete, endpoint_disable, endpoint_enable
from endpoints.verification import verification_status
from webhookhub.admin_utils import (
    SHOWN_ONCE_MAX_AGE,
    CappedCountPaginator,
    actor,
    show_once,
)

TOKEN_ONCE_KEY = "webhookhub_token_once"
TOKEN_FIELDS = ("token_action", "token_value")

# --- Endpoints ----------------------------------------------------------------------


class CircuitFilter(admin.SimpleListFilter):
    title = _("circuit")
    # Not the lookup's own name: Django refuses lookups across a reverse one-to-one in
    # the query string (400) unless the filter owns the parameter under its own name.
    parameter_name = "circuit"

    def lookups(self, request, model_admin):
        return [("open,half_open", _("Open or probing")), ("closed", _("Closed"))]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(health__circuit_state__in=self.value().split(","))
        return queryset


@admin.register(Endpoint)
class EndpointAdmin(VerificationViews, CircuitViews, EndpointSupportViews, admin.ModelAdmin):
    form = EndpointForm
    change_form_template = "admin/endpoints/endpoint/change_form.html"
    # Fits 1366 px: the partner under the name, the URL shortened (whole on hover),
    # on/off, circuit and the reason in one "state" column (whole sentence on hover).
    list_display = (
        "switch",
        "name_partner",
        "short_url",
        "subscribed",
        "health_24h",
        "last_delivery",
        "state",
    )
    list_display_links = ("name_partner",)
    list_filter = ("enabled", CircuitFilter, "ordered", "partner")
    search_fields = ("name", "=public_id", "url", "partner__name")
    list_select_related = ("partner", "health")
    readonly_fields = (
        "public_id",
        "enabled",
        "disabled_at",
        "disabled_kind",
        "disabled_by",
        "disabled_reason",
        "state",
        "verification",
        "circuit",
        "consecutive_failures",
        "failing_since",
        "circuit_retry_at",
        "audit",
        "bearer_token",
        "signing_secrets",
        "signature_scheme",
        "public_key",
        "created_at",
        "updated_at",
    )
    inlines = []
    actions = ["enable_selected", "disable_selected"]
    show_full_result_count = False
    paginator = CappedCountPaginator
    fieldsets = (
        (None, {"fields": ("public_id", "partner", "name", "url", "description")}),
        (
            _("On / Off"),
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
        (_("Event types"), {"fields": ("event_types", "filter")}),
        (
            _("Delivery"),
            {
                "fields": (
                    "retry_policy",
                    "headers",
                    "timeout_seconds",
                    "rate_limit_per_second",
                    "max_in_flight",
                    "ordered",
                    "send_traceparent",
                )
            },
        ),
        (
            _("Credentials"),
            {
                "fields": (
                    "signing_secrets",
                    "signature_scheme",
                    "public_key",
                    "bearer_token",
                    *TOKEN_FIELDS,
                )
            },
        ),
        (
            _("Health"),
            {
                "fields": (
                    "state",
                    "verification",
                    "circuit",
                    "consecutive_failures",
                    "failing_since",
                    "circuit_retry_at",
                )
            },
        ),
        (_("History"), {"fields": ("created_at", "updated_at", "audit")}),
    )

    def get_fieldsets(self, request, obj=None):
        """Without the change permission Django shows every field read-only by its model
        value; the headers are shown masked instead, the event types as a list. The token
        field is for those who may handle credentials (`rotate_credentials`). A new
        endpoint has no state, health or history to show yet."""
        editing = obj is None or self.has_change_permission(request, obj)
        swap = {} if editing else {"headers": "masked_headers", "event_types": "subscribed"}
        drop = set() if editing and self.has_rotate_permission(request) else set(TOKEN_FIELDS)
        if obj is None:
            drop |= set(self.readonly_fields) - {"signing_secrets"}
        fieldsets = []
        for title, opts in super().get_fieldsets(request, obj):
            fields = [swap.get(f, f) for f in opts["fields"] if f not in drop]
            if fields:
                fieldsets.append((title, {**opts, "fields": fields}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        """An endpoint stays with the partner it was registered for."""
        readonly = super().get_readonly_fields(request, obj)
        return (*readonly, "partner") if obj is not None else readonly

    @admin.display(description=_("Headers"))
    def masked_headers(self, endpoint):
        rows = header_rules.masked(endpoint.headers).items()
        if not rows:
            return _("none")
        return format_html_join("", "<div><code>{}: {}</code></div>", rows)

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
                ok_24h=recent_count(Q(status=DeliveryStatus.SUCCEEDED), since),
                total_24h=recent_count(FINISHED_OR_FAILING, since),
                last_status=Subquery(latest.values("status")[:1]),
                last_at=Subquery(latest.values("created_at")[:1]),
            )
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        endpoint = self.get_object(request, object_id)
        if endpoint is not None:
            health = getattr(endpoint, "health", None)
            extra_context["circuit_not_closed"] = (
                health is not None and health.circuit_state != CircuitState.CLOSED
            )
            extra_context["circuit_open"] = (
                health is not None and health.circuit_state == CircuitState.OPEN
            )
            extra_context["can_manage_circuit"] = request.user.has_perm(CIRCUIT_PERMISSION)
        return super().change_view(request, object_id, form_url, extra_context)

    # -- columns
    @admin.display(description=_("Endpoint / partner"), ordering="name")
    def name_partner(self, endpoint):
        return format_html(
            '{}<br><span class="quiet">{}</span>', endpoint.name, endpoint.partner.name
        )

    @admin.display(description=_("URL"), ordering="url")
    def short_url(self, endpoint):
        url = endpoint.url
        shown = url if len(url) <= 40 else url[:28] + "…" + url[-11:]
        return format_html('<span title="{}" class="wh-url">{}</span>', url, shown)

    @admin.display(description=_("State"), ordering="enabled")
    def state(self, endpoint):
        reason = endpoint_state(endpoint, getattr(endpoint, "health", None))
        colour = {"delivering": "#2e7d32", "failing": "#b26a00"}.get(reason.code, "#ba2121")
        return format_html(
            '<strong style="color:{}" title="{}" class="wh-state">{}</strong>',
            colour,
            reason.text,
            reason.short,
        )

    @admin.display(description=_("Audit trail"))
    def audit(self, endpoint):
        return format_html("{}", audit_trail(endpoint))

    @admin.display(description=_("On/Off"), ordering="enabled")
    def switch(self, endpoint):
        label = _("On") if endpoint.enabled else _("Off")
        colour = "#2e7d32" if endpoint.enabled else "#ba2121"
        url = reverse("admin:endpoints_endpoint_toggle", args=[endpoint.pk])
        # A submit button of the changelist form posting to the toggle view (it carries
        # the form's CSRF token): one click, no JavaScript.
        return format_html(
            '<button type="submit" formaction="{}" formmethod="post" class="button wh-toggle" '
            'id="toggle-{}" title="{}" style="background:{};color:#fff">{}</button>',
            url,
            endpoint.public_id,
            _("Switch off") if endpoint.enabled else _("Switch on"),
            colour,
            label,
        )

    @admin.display(description=_("Event types"))
    def subscribed(self, endpoint):
        return ", ".join(s.event_type for s in endpoint.subscriptions.all()) or "–"

    @admin.display(description=_("24 h success"))
    def health_24h(self, endpoint):
        return health_cell(endpoint.ok_24h, endpoint.total_24h)

    @admin.display(description=_("Last delivery"), ordering="last_at")
    def last_delivery(self, endpoint):
        if not endpoint.last_at:
            return "–"
        return format_html(
            "{}<br><small>{}</small>",
            endpoint.last_status,
            timezone.localtime(endpoint.last_at).strftime("%Y-%m-%d %H:%M:%S"),
        )

    @admin.display(description=_("Verification"))
    def verification(self, endpoint):
        text = verification_status(endpoint)[1]
        colour = "#ba2121" if endpoint.awaiting_verification else "inherit"
        return format_html('<span style="color:{}" id="verification">{}</span>', colour, text)

    @admin.display(description=_("Circuit"), ordering="health__circuit_state")
    def circuit(self, endpoint):
        health = getattr(endpoint, "health", None)
        if health is None or health.circuit_state == CircuitState.CLOSED:
            return _("closed") if endpoint.enabled else _("closed (the endpoint is off)")
        return format_html(
            '<strong style="color:#ba2121">{}</strong>', health.get_circuit_state_display()
        )

    @admin.display(description=_("Failures in a row"))
    def consecutive_failures(self, endpoint):
        health = getattr(endpoint, "health", None)
        return health.consecutive_failures if health else 0

    @admin.display(description=_("Failing since"))
    def failing_since(self, endpoint):
        health = getattr(endpoint, "health", None)
        return health.failing_since if health and health.failing_since else "–"

    @admin.display(description=_("Next probe"))
    def circuit_retry_at(self, endpoint):
        health = getattr(endpoint, "health", None)
        return health.circuit_retry_at if health and health.circuit_retry_at else "–"

    @admin.display(description=_("Bearer token"))
    def bearer_token(self, endpoint):
        return ("••••" + endpoint.auth_token[-4:]) if endpoint.auth_token else _("none")

    @admin.display(description=_("Signing secrets"))
    def signing_secrets(self, endpoint):
        if not endpoint.pk:
            return _("generated when saved, shown once")
        rows = [(_("current"), "whsec_••••" + endpoint.signing_secret[-4:])]
        for old in endpoint.previous_secrets or []:
            rows.append(
                (
                    _("previous, signs until %(time)s") % {"time": old["expires_at"][:16]},
                    "whsec_••••" + old["secret"][-4:],
                )
            )
        return format_html_join("", "<div>{}: <code>{}</code></div>", rows)

    # -- saving and deleting through the services
    def get_urls(self):
        return [
            path(
                "<int:pk>/token-once/",
                self.admin_site.admin_view(self.token_once_view),
                name="endpoints_endpoint_token_once",
            ),
            *super().get_urls(),
        ]

    def save_model(self, request, obj, form, change):
        new = obj.pk is None
        endpoint, request._new_token = form.save_endpoint(by=actor(request))
        obj.pk = endpoint.pk
        obj.refresh_from_db()
        if new:
            request._new_signing_secret = obj.signing_secret

    def save_related(self, request, form, formsets, change):
        """Subscriptions were saved with the endpoint (`subscriptions_set`)."""

    def response_add(self, request, obj, post_url_continue=None):
        back_url = reverse("admin:endpoints_endpoint_change", args=[obj.pk])
        if request._new_token:
            # Two values to show once: the secret now, the token on the page after.
            request.session[TOKEN_ONCE_KEY] = {"pk": obj.pk, "sealed": seal(request._new_token)}
            back_url = reverse("admin:endpoints_endpoint_token_once", args=[obj.pk])
        return show_once(
            request,
            title=_("Endpoint created"),
            label=_("Signing secret of %(name)s") % {"name": obj.name},
            value=request._new_signing_secret,
            back_url=back_url,
            note=_("Give it to the partner: they verify every webhook with it."),
        )

    def response_change(self, request, obj):
        if not request._new_token:
            return super().response_change(request, obj)
        return self._show_token_once(request, obj, request._new_token)

    def _show_token_once(self, request, endpoint, token):
        return show_once(
            request,
            title=_("Bearer token generated"),
            label=_("New bearer token of %(name)s") % {"name": endpoint.name},
            value=token,
            back_url=reverse("admin:endpoints_endpoint_change", args=[endpoint.pk]),
            note=_("Give it to the partner: webhooks now carry Authorization: Bearer <token>."),
        )

    def token_once_view(self, request, pk):
        """The bearer token generated with a new endpoint, after its signing secret."""
        endpoint = self._endpoint(request, pk, "rotate")
        kept = request.session.pop(TOKEN_ONCE_KEY, None) or {}
        token = unseal(kept.get("sealed", ""), max_age=SHOWN_ONCE_MAX_AGE)
        if kept.get("pk") != endpoint.pk or token is None:
            return self._back(endpoint)
        return self._show_token_once(request, endpoint, token)

    def delete_model(self, request, obj):
        endpoint_delete(obj, by=actor(request))

    def delete_queryset(self, request, queryset):
        for endpoint in queryset:
            endpoint_delete(endpoint, by=actor(request))

    def get_deleted_objects(self, objs, request):
        """What goes with the endpoints, counted rather than listed (an endpoint may have
        millions of deliveries); deliveries and attempts are history nobody deletes on
        their own, so they need no delete permission of their own."""
        objs = list(objs)
        ids = [e.pk for e in objs]
        counts = {
            Endpoint: len(objs),
            Subscription: Subscription.objects.filter(endpoint_id__in=ids).count(),
            Delivery: Delivery.objects.filter(endpoint_id__in=ids).count(),
            DeliveryAttempt: DeliveryAttempt.objects.filter(delivery__endpoint_id__in=ids).count(),
        }
        model_count = {model._meta.verbose_name_plural: n for model, n in counts.items() if n}
        listed = [format_html("{} <code>{}</code>", e.name, e.public_id) for e in objs] + [
            f"{n} {model_ngettext(model, n)}" for model, n in list(counts.items())[1:] if n
        ]
        return listed, model_count, set(), []

    # -- bulk actions
    @admin.action(description=_("Switch selected endpoints on"), permissions=["toggle"])
    def enable_selected(self, request, queryset):
        n = sum(endpoint_enable(e, by=actor(request)) for e in queryset)
        self.message_user(request, _("Switched on %(n)s endpoint(s).") % {"n": n}, messages.SUCCESS)

    @admin.action(description=_("Switch selected endpoints off…"), permissions=["toggle"])
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
                self.message_user(
                    request, _("Switched off %(n)s endpoint(s).") % {"n": n}, messages.SUCCESS
                )
                return None
        else:
            form = DisableForm()
        return self._render(
            request,
            "admin/endpoints/endpoint/disable.html",
            {
                "title": _("Switch endpoints off"),
                "form": form,
                "endpoints": queryset,
                "action": "disable_selected",
                "selected": queryset.values_list("pk", flat=True),
            },
        )
