"""Shared pieces of the admin: who acted, one-time secret pages, cheap pagination."""

from django.core.paginator import Paginator
from django.db import connection
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.functional import cached_property

SHOWN_ONCE_KEY = "webhookhub_shown_once"
COUNT_CAP = 10_000


def actor(request) -> str:
    """The audit label of the staff member acting in this request."""
    return f"admin:{request.user.get_username()}"


def show_once(request, *, title: str, label: str, value: str, back_url: str, note: str = ""):
    """Keep a secret in the session for exactly one page view and go to that page."""
    request.session[SHOWN_ONCE_KEY] = {
        "title": title,
        "label": label,
        "value": value,
        "back_url": back_url,
        "note": note,
    }
    return redirect(reverse("admin:shown_once"))


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
