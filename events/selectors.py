"""Read queries about events: which endpoints an event goes to, how its payload fared
against its type's schema."""

from django.utils.translation import gettext as _

from endpoints.models import Partner
from events.models import Event
from events.routing import routes


def endpoint_ids_for_event(event_type: str, partner: Partner | None, envelope: dict) -> list[int]:
    """Ids of the endpoints of active partners subscribed to this event whose filters
    pass — switched-off ones included (their deliveries are held until they are on).

    An event for a partner reaches only that partner's endpoints; an event without a
    partner is a broadcast. An endpoint passes when its own filter (if any) and at
    least one matching subscription's filter (if any) accept the envelope. The routes
    come from `events.routing` (cached per process for a few seconds, compiled once).
    """
    return [route.endpoint_id for route in routes_for_event(event_type, partner, envelope)]


def routes_for_event(event_type: str, partner: Partner | None, envelope: dict) -> list:
    """The routes (`events.routing.Route`: endpoint id, switched on or off) this event
    takes."""
    return [
        route
        for route in routes(event_type, partner.pk if partner is not None else None)
        if all(accepts(envelope) for accepts in route.predicates)
    ]


def events_matching_pattern(pattern: str, *, limit: int = 100, among=None):
    """The newest events a subscription value (`order.paid`, `order.*`, `*`) selects,
    among all events or the queryset `among` (e.g. one partner's)."""
    events = (Event.objects if among is None else among).select_related("event_type")
    events = events.order_by("-created_at", "-id")
    if pattern == "*":
        events = events.exclude(event_type__name__startswith="webhookhub.")
    elif pattern.endswith(".*"):
        events = events.filter(event_type__name__startswith=pattern[:-1])
    else:
        events = events.filter(event_type__name=pattern)
    return list(events[:limit])


def schema_check(event: Event) -> dict:
    """How the event's payload fared against its type's schema, as the admin and the
    portal show it: `summary` (one sentence), `problems` (`{path, message}`, warn mode),
    `version` checked against (None: not checked)."""
    version, problems = event.schema_version, list(event.schema_problems or ())
    if version is None:
        summary = _("Not checked: the type's schema mode was off when it was published.")
    elif problems:
        summary = _(
            "Did not validate against schema version %(version)s; accepted because the "
            "type's schema mode was warn."
        ) % {"version": version}
    else:
        summary = _("Valid against schema version %(version)s.") % {"version": version}
    return {"summary": summary, "problems": problems, "version": version}
