"""`/api/v1/audit/`: the audit trail, a partner token seeing its own objects' only."""

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets

from audit.models import Action, AuditEntry
from audit.services import entry_text
from webhookhub.api.pagination import CreatedCursorPagination
from webhookhub.api.permissions import ANY_ROLE
from webhookhub.api.scoping import ScopedQuerysetMixin
from webhookhub.api.views import ApiViewMixin


class AuditEntrySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    actor = serializers.CharField(
        help_text="Who: `admin:<user>`, `api:<token prefix>`, `portal:<partner>`, "
        "`command:<name>` or `system`."
    )
    action = serializers.ChoiceField(choices=Action.choices)
    object_type = serializers.CharField(help_text="endpoint, delivery, event, api_token, …")
    object_id = serializers.CharField(help_text="Its public id (`ep_…`, `evt_…`, …).")
    object_repr = serializers.CharField()
    reason = serializers.CharField()
    count = serializers.IntegerField(allow_null=True, help_text="For bulk actions.")
    details = serializers.DictField()
    text = serializers.SerializerMethodField(help_text="The entry in words.")

    def get_text(self, entry) -> str:
        return entry_text(entry)


class AuditFilter(django_filters.FilterSet):
    object = django_filters.CharFilter(
        field_name="object_id", max_length=200, label="An object's id (`ep_…`, `evt_…`, …)."
    )
    action = django_filters.ChoiceFilter(choices=Action.choices)
    actor = django_filters.CharFilter(field_name="actor", max_length=150)
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")

    class Meta:
        model = AuditEntry
        fields = ["object", "action", "actor", "since"]


class AuditPagination(CreatedCursorPagination):
    ordering = ("-at", "-id")


@extend_schema_view(list=extend_schema(summary="List the audit trail"))
@extend_schema(tags=["audit"])
class AuditEntryViewSet(
    ApiViewMixin, ScopedQuerysetMixin, mixins.ListModelMixin, viewsets.GenericViewSet
):
    """Every state-changing action on your objects: who, what, when, why."""

    roles = {"*": ANY_ROLE}
    serializer_class = AuditEntrySerializer
    filterset_class = AuditFilter
    pagination_class = AuditPagination

    def base_queryset(self):
        return AuditEntry.objects.all()
