"""What `publish()` looks up for every event, kept per process for a short while.

The event-type catalog (and each type's JSON Schema, compiled), partners by id and each
(event type, partner)'s routing — the subscribed endpoints with their filters already
compiled — change when someone edits them, which is rare next to publishing. Reading
them from the database for every event was most of `publish()`'s cost (three queries
of four). Here they are cached:

* in this process, any save or delete of an EventType, Partner, Endpoint or
  Subscription, and every endpoint switch (`endpoints.signals.routing_changed`), clears
  the cache at once;
* endpoints switched off by people are routed too (their deliveries are held until the
  endpoint is switched on again: "off" pauses a webhook, it does not drop its events);
  `Route.enabled` says which, so that publishing does not wake the workers for them.
  Endpoints webhookhub switched off itself (failing for too long, 410 Gone) get nothing
  new until someone switches them on;
* other processes (each gunicorn worker, each qcluster worker, other machines) see an
  edit within `WEBHOOKHUB_ROUTING_CACHE_SECONDS` (2 s by default; 0 turns caching off).
  An endpoint created in that window starts receiving within the window; one switched
  off or on in it is held or sent as the claim finds its switch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.signals import setting_changed
from django.db.models import Q
from django.db.models.signals import post_delete, post_save

from endpoints.models import Endpoint, Partner, Subscription
from endpoints.signals import routing_changed
from events.filters import compile_filter
from events.models import EventType
from events.schemas import compiled

MISSING = object()


@dataclass(frozen=True)
class Route:
    """One endpoint an event may go to, and the filters it must pass."""

    endpoint_id: int
    predicates: tuple[Callable[[dict], bool], ...]  # all must accept the envelope
    enabled: bool = True  # switched off: its deliveries are held until it is on again


class _Cache:
    """A dict whose entries expire; cleared as a whole on any relevant change, and when
    it holds `MAX` entries (expired ones are not swept one by one)."""

    MAX = 10_000

    def __init__(self) -> None:
        self._entries: dict[object, tuple[float, object]] = {}
        self._lock = threading.Lock()
        self.generation = 0

    def get(self, key, load: Callable[[], object]):
        ttl = settings.WEBHOOKHUB_ROUTING_CACHE_SECONDS
        if ttl <= 0:
            return load()
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        generation = self.generation
        value = load()
        with self._lock:
            if generation == self.generation:  # not cleared while we were loading
                if len(self._entries) >= self.MAX:
                    self._entries.clear()
                self._entries[key] = (now + ttl, value)
        return value

    def clear(self, **_kwargs) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()


_cache = _Cache()


def event_type_active(name: str) -> EventType | None:
    """The event type called `name` that accepts events, or None."""
    found = _cache.get(
        ("type", name),
        lambda: EventType.objects.filter(name=name, archived_at__isnull=True).first() or MISSING,
    )
    return None if found is MISSING else found


def partner_active(public_id: str) -> Partner | None:
    """The active partner with this public id (prt_…), or None."""
    found = _cache.get(
        ("partner", public_id),
        lambda: Partner.objects.filter(public_id=public_id, is_active=True).first() or MISSING,
    )
    return None if found is MISSING else found


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


def routes(event_type: str, partner_id: int | None) -> tuple[Route, ...]:
    """The endpoints of active partners subscribed to `event_type` (only `partner_id`'s
    when given), on or switched off by a person, each with the filters it must pass: its own and, if
    all its matching subscriptions have one, any of theirs."""
    return _cache.get(("routes", event_type, partner_id), lambda: _load(event_type, partner_id))


def _load(event_type: str, partner_id: int | None) -> tuple[Route, ...]:
    rows = Subscription.objects.filter(
        Q(endpoint__enabled=True) | Q(endpoint__disabled_kind=Endpoint.DisabledBy.MANUAL),
        event_type__in=subscription_patterns(event_type),
        endpoint__partner__is_active=True,
    )
    if partner_id is not None:
        rows = rows.filter(endpoint__partner_id=partner_id)
    found: dict[int, tuple[dict | None, list]] = {}
    enabled: dict[int, bool] = {}
    for endpoint_id, sub_filter, endpoint_filter, on in rows.order_by("endpoint_id").values_list(
        "endpoint_id", "filter", "endpoint__filter", "endpoint__enabled"
    ):
        own, subs = found.setdefault(endpoint_id, (endpoint_filter, []))
        subs.append(sub_filter)
        enabled[endpoint_id] = on
    result = []
    for endpoint_id, (own, subs) in found.items():
        predicates = []
        if own:
            predicates.append(compile_filter(own))
        if all(subs):  # an unfiltered matching subscription lets everything through
            compiled = tuple(compile_filter(spec) for spec in subs)
            predicates.append(lambda envelope, any_of=compiled: any(p(envelope) for p in any_of))
        result.append(Route(endpoint_id, tuple(predicates), enabled[endpoint_id]))
    return tuple(result)


_validators: dict[tuple[int, int], object] = {}
_validators_lock = threading.Lock()


def schema_validator(event_type: EventType):
    """`event_type`'s schema compiled, once per process for each (type, schema version).

    The version goes up with every schema change and any save of an event type clears
    these (below), so an edit applies at once in this process; other processes see the
    new version with the type itself (`event_type_active`, within the cache seconds).
    """
    key = (event_type.pk, event_type.schema_version)
    found = _validators.get(key)
    if found is None:
        found = compiled(event_type.schema)
        with _validators_lock:
            if len(_validators) >= _Cache.MAX:
                _validators.clear()
            _validators[key] = found
    return found


def schema_cache_clear(**_kwargs) -> None:
    """Forget the compiled schemas (this process only)."""
    with _validators_lock:
        _validators.clear()


def routing_cache_clear(**_kwargs) -> None:
    """Forget everything cached here (this process only)."""
    _cache.clear()


for _model in (EventType, Partner, Endpoint, Subscription):
    post_save.connect(routing_cache_clear, sender=_model, dispatch_uid=f"routing-{_model.__name__}")
    post_delete.connect(
        routing_cache_clear, sender=_model, dispatch_uid=f"routing-del-{_model.__name__}"
    )
post_save.connect(schema_cache_clear, sender=EventType, dispatch_uid="schemas-EventType")
post_delete.connect(schema_cache_clear, sender=EventType, dispatch_uid="schemas-del-EventType")
routing_changed.connect(routing_cache_clear, dispatch_uid="routing-changed")
setting_changed.connect(routing_cache_clear, dispatch_uid="routing-settings")
