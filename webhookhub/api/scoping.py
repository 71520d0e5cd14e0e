"""What a token may see: the one place API querysets are narrowed to a partner.

Every API ViewSet gets its queryset through `ScopedQuerysetMixin`, which applies
`partner_scope()` for partner tokens. An object outside the scope is simply not in the
queryset, so looking it up is a 404 — the same answer as for an id that never existed.
A model without a rule here is refused (fail closed), so a new resource cannot leak by
forgetting its rule.
"""

from django.db.models import Exists, OuterRef, Q, QuerySet

from audit.models import AuditEntry
from deliveries.models import Delivery
from endpoints.models import Endpoint, Partner
from events.models import Event, EventType

SCOPED_MODELS = frozenset({Endpoint, Delivery, Event, EventType, AuditEntry})


def partner_scope(model, partner: Partner) -> Q:
    """The condition a row of `model` must meet to be visible to `partner`'s tokens."""
    if model is Endpoint:
        return Q(partner=partner)
    if model is Delivery:
        return Q(endpoint__partner=partner)
    if model is Event:
        # Its own events, and the broadcasts that were delivered to one of its endpoints.
        delivered = Delivery.objects.filter(event=OuterRef("pk"), endpoint__partner=partner)
        return Q(partner=partner) | Q(partner__isnull=True) & Q(Exists(delivered))
    if model is EventType:
        return Q()  # the catalog is shared by everyone
    if model is AuditEntry:
        return Q(partner=partner)  # actions on its own endpoints, deliveries, events, tokens
    raise LookupError(f"No partner scope is defined for {model.__name__}.")


def scope_queryset(queryset: QuerySet, client) -> QuerySet:
    """`queryset` narrowed to what `client` (an `ApiClient`) may see."""
    if queryset.model not in SCOPED_MODELS:  # fail closed, whatever the role
        raise LookupError(f"No partner scope is defined for {queryset.model.__name__}.")
    if client.is_partner:
        if client.partner is None:  # cannot happen (a DB constraint), but never widen
            return queryset.none()
        return queryset.filter(partner_scope(queryset.model, client.partner))
    return queryset


class ScopedQuerysetMixin:
    """ViewSets define `base_queryset()`; this scopes it to the calling token."""

    def base_queryset(self) -> QuerySet:
        raise NotImplementedError

    def get_queryset(self) -> QuerySet:
        queryset = self.base_queryset()
        if getattr(self, "swagger_fake_view", False):  # schema generation: no token
            return queryset.none()
        return scope_queryset(queryset, self.request.user)
