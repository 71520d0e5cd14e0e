"""Cursor pagination, newest first, stable while rows are being inserted."""

from django.utils.dateparse import parse_datetime
from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError


class CreatedCursorPagination(pagination.CursorPagination):
    """Pages ordered by `-created_at` (ties broken by the internal key).

    The cursor is opaque (it encodes a creation time, never a primary key); `limit`
    sets the page size (default 50, at most 100). A malformed cursor is a 400.
    """

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 100
    invalid_cursor_message = "Invalid cursor."
    position_is_time = True

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
                    f"Page size (default {self.page_size}, at most {self.max_page_size})."
                )
        return parameters


class NameCursorPagination(CreatedCursorPagination):
    """Pages of a catalog ordered by its unique `name`."""

    ordering = ("name",)
    position_is_time = False
