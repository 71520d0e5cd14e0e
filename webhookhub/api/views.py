"""What every API ViewSet shares: public-id lookups, request validation and the body
limit; and the API's answers for what never reaches a ViewSet (unknown paths, Django's
own 400/403/404/500)."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from webhookhub.api.exceptions import PayloadTooLarge
from webhookhub.api.fields import StrictSerializer
from webhookhub.api.parsers import body_limit, declared_length

PUBLIC_ID_REGEX = r"[A-Za-z0-9_]{1,40}"
API_PREFIX = "/api/"


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


def api_error(status: int, detail: str) -> JsonResponse:
    """The API's error shape for an answer that is not about a field."""
    return JsonResponse({"detail": str(detail), "errors": {}}, status=status)


def is_api_path(request) -> bool:
    return request.path_info.startswith(API_PREFIX)


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Unknown paths under /api/ answer in the API's error shape, not an HTML page."""
    return api_error(404, _("No such API path."))


# Django's error handlers (webhookhub/urls.py): JSON under /api/, Django's pages elsewhere.
# They answer what no API view answered: a path no pattern matches (control characters
# in an id), a request Django refused before any view ran, an unhandled error.


def bad_request(request, exception):
    if not is_api_path(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        too_large = PayloadTooLarge(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        return api_error(too_large.status_code, too_large.detail)
    return api_error(400, _("Bad request."))


def permission_denied(request, exception):
    if not is_api_path(request):
        return defaults.permission_denied(request, exception)
    return api_error(403, _("You do not have permission to perform this action."))


def page_not_found(request, exception):
    if not is_api_path(request):
        return defaults.page_not_found(request, exception)
    return api_not_found(request)


def server_error(request):
    if not is_api_path(request):
        return defaults.server_error(request)
    return api_error(500, _("Server error."))
