"""Cursor pagination, newest first, stable while rows are being inserted."""

from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _
from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError


class CreatedCursorPagination(pagination.CursorPagination):
    """Pages ordered by `-created_at` (ties broken by the internal key).

    The cursor is opaque (it encodes a creation time, never a primary key); `limit`
    sets the page size (default 50, 1 to 100). A malformed cursor or a `limit` outside
    that range is a 400 (the schema publishes the range; nothing is silently clamped).
    """

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 100
    invalid_cursor_message = _("Invalid cursor.")
    invalid_limit_message = _("Give a whole number from 1 to %(max)s.")
    position_is_time = True

    def get_page_size(self, request):
        values = request.query_params.getlist(self.page_size_query_param)
        if not values:
            return self.page_size
        value = values[0] if len(values) == 1 else ""  # `limit=5&limit=7` is not an integer
        digits = value.isascii() and value.isdigit() and len(value) <= 6
        if not digits or not 1 <= int(value) <= self.max_page_size:
            message = self.invalid_limit_message % {"max": self.max_page_size}
            raise ValidationError({self.page_size_query_param: [message]})
        return int(value)

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise ValidationError({"cursor": [self.invalid_cursor_message]}) from None
        if self.position_is_time and cursor is not None and cursor.position is not None:
            try:
                valid = parse_datetime(cursor.position) is not None
            except ValueError:
                valid = False
            if not valid:
                raise ValidationError({"cursor": [self.invalid_cursor_message]})
        return cursor

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": self.max_page_size,
                }
                parameter["description"] = (
                    f"Page size (default {self.page_size}, 1 to {self.max_page_size}; "
                    "outside that range a 400)."
                )
            elif parameter["name"] == self.cursor_query_param:
                parameter["description"] = (
                    "Opaque: the value from `next` or `previous` (anything else is a 400); "
                    "empty or absent for the first page."
                )
        return parameters


class NameCursorPagination(CreatedCursorPagination):
    """Pages of a catalog ordered by its unique `name`."""

    ordering = ("name",)
    position_is_time = False
