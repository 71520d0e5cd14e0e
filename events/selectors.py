"""Read queries about events: which endpoints an event goes to."""

from endpoints.models import Partner, Subscription
from events.filters import compile_filter


def subscription_patterns(event_type: str) -> list[str]:
    """Every subscription value that selects `event_type`: itself, each `prefix.*`, `*`.

    Operational events (`webhookhub.…`) are not matched by the bare `*`: an endpoint
    receives them only when it names them (or `webhookhub.*`).
    """
    parts = event_type.split(".")
    patterns = [event_type] + [".".join(parts[:i]) + ".*" for i in range(1, len(parts))]
    if parts[0] != "webhookhub":
        patterns.append("*")
    return patterns


def endpoint_ids_for_event(event_type: str, partner: Partner | None, envelope: dict) -> list[int]:
    """Ids of enabled endpoints of active partners subscribed to this event whose
    filters pass.

    An event for a partner reaches only that partner's endpoints; an event without a
    partner is a broadcast. An endpoint passes when its own filter (if any) and at
    least one matching subscription's filter (if any) accept the envelope. One query,
    and no endpoint secrets are loaded (decrypting them would dominate a large fan-out).
    """
    rows = Subscription.objects.filter(
        event_type__in=subscription_patterns(event_type),
        endpoint__enabled=True,
        endpoint__partner__is_active=True,
    )
    if partner is not None:
        rows = rows.filter(endpoint__partner=partner)
    chosen: dict[int, None] = {}
    for endpoint_id, sub_filter, endpoint_filter in rows.order_by("endpoint_id").values_list(
        "endpoint_id", "filter", "endpoint__filter"
    ):
        if endpoint_id in chosen:
            continue
        if sub_filter and not compile_filter(sub_filter)(envelope):
            continue
        if endpoint_filter and not compile_filter(endpoint_filter)(envelope):
            continue
        chosen[endpoint_id] = None
    return list(chosen)


def events_matching_pattern(pattern: str, *, limit: int = 100):
    """The newest events a subscription value (`order.paid`, `order.*`, `*`) selects."""
    from events.models import Event

    events = Event.objects.select_related("event_type").order_by("-created_at", "-id")
    if pattern == "*":
        events = events.exclude(event_type__name__startswith="webhookhub.")
    elif pattern.endswith(".*"):
        events = events.filter(event_type__name__startswith=pattern[:-1])
    else:
        events = events.filter(event_type__name=pattern)
    return list(events[:limit])
