"""Shared pieces of the admin: who acted, one-time secret pages, cheap pagination."""

from django import forms
from django.core.paginator import Paginator
from django.db import connection
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy

from endpoints.crypto import seal, unseal

SHOWN_ONCE_KEY = "webhookhub_shown_once"
SHOWN_ONCE_MAX_AGE = 10 * 60  # seconds a secret waits for its page
COUNT_CAP = 10_000


class ReasonForm(forms.Form):
    """The optional reason a support action asks for, kept in the audit trail."""

    reason = forms.CharField(
        required=False,
        max_length=500,
        label=gettext_lazy("Reason (optional)"),
        help_text=gettext_lazy("Kept in the audit trail with your name."),
        widget=forms.TextInput(attrs={"size": 60}),
    )


def actor(request) -> str:
    """The audit label of the staff member acting in this request."""
    return f"admin:{request.user.get_username()}"


def show_once(request, *, title: str, label: str, value: str, back_url: str, note: str = ""):
    """Keep a secret for exactly one page view and go to that page.

    The session (a row in django_session) holds it only encrypted with the encryption
    key, and only for `SHOWN_ONCE_MAX_AGE` seconds: a database dump or a page left
    unopened does not give it away."""
    request.session[SHOWN_ONCE_KEY] = {
        "title": str(title),
        "label": str(label),
        "sealed": seal(value),
        "back_url": back_url,
        "note": str(note),
    }
    return redirect(reverse("admin:shown_once"))


def shown_once_pop(request) -> dict | None:
    """What `show_once` kept, with its value decrypted, and forget it. None if there is
    nothing, or it is older than `SHOWN_ONCE_MAX_AGE` (then it is forgotten too)."""
    kept = request.session.pop(SHOWN_ONCE_KEY, None)
    if not isinstance(kept, dict):
        return None
    value = unseal(kept.get("sealed", ""), max_age=SHOWN_ONCE_MAX_AGE)
    return None if value is None else {**kept, "value": value}


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows, so a changelist over millions of rows never
    runs a full COUNT(*); the page shows "10000+" beyond that."""

    @cached_property
    def count(self):
        query = self.object_list.values("pk").order_by()[: COUNT_CAP + 1]
        with connection.cursor() as cursor:
            sql, params = query.query.sql_with_params()
            cursor.execute(f"SELECT COUNT(*) FROM ({sql}) AS capped", params)  # noqa: S608
            return cursor.fetchone()[0]


class HistoryAdminMixin:
    """Events and deliveries are history: nobody adds, edits or deletes them in the
    admin; lists are newest first and never count the whole table."""

    show_full_result_count = False
    paginator = CappedCountPaginator
    ordering = ("-created_at", "-id")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_replay_permission(self, request):
        return request.user.has_perm("deliveries.replay_delivery")
