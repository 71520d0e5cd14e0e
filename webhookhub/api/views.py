"""What every API ViewSet shares: public-id lookups, request validation and the body
limit."""

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from webhookhub.api.exceptions import PayloadTooLarge
from webhookhub.api.fields import StrictSerializer
from webhookhub.api.parsers import body_limit, declared_length

PUBLIC_ID_REGEX = r"[A-Za-z0-9_]{1,40}"


class EmptyBody(StrictSerializer):
    """For actions that take no input: nothing, `{}`, or an error naming the extra."""


class ApiViewMixin:
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = PUBLIC_ID_REGEX

    def initial(self, request, *args, **kwargs):
        # First, before authentication and before anything reads the body: a body larger
        # than this view takes is refused on its declared length and never read. (A
        # smaller, lying Content-Length only ever gets that many bytes read.)
        limit = body_limit(self)
        if declared_length(request) > limit:
            raise PayloadTooLarge(limit)
        super().initial(request, *args, **kwargs)

    def filter_queryset(self, queryset):
        """Query filters narrow lists only; a detail route finds its object regardless."""
        if getattr(self, "action", None) != "list":
            return queryset
        return super().filter_queryset(queryset)

    def validated(self, serializer_class, **kwargs) -> dict:
        """The request body checked by `serializer_class` (None: must be empty)."""
        data = self.request.data
        if serializer_class is None:
            serializer_class = EmptyBody
        serializer = serializer_class(data=data, **kwargs)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Unknown paths under /api/ answer in the API's error shape, not an HTML page."""
    return JsonResponse({"detail": "No such API path.", "errors": {}}, status=404)
