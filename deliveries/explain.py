"""Why: a delivery's state and an event's routing, in words.

The one place the admin, the API and the portal ask "why is this delivery waiting?"
and "did partner X get event Y, and if not, why?". Every answer is built from what the
rows hold now (the delivery, its endpoint and partner, the endpoint's health row, the
ordered queue's head, the audit trail for past switches); nothing here writes.

`delivery_reasons` explains a page of deliveries with a fixed number of queries
(whatever the page size): the rows are loaded with their endpoint, partner and health
row, and the ordered queues' heads and the in-flight counts are read once per page.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Case, CharField, Count, Exists, IntegerField, OuterRef, Subquery, When
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import Action, AuditEntry
from deliveries.models import (
    ORDERED_TRIGGERS,
    TEST_LIKE_EVENT_TYPES,
    WAITING_STATUSES,
    CircuitState,
    Delivery,
    DeliveryStatus,
    EndpointHealth,
)
from deliveries.selectors import dispatcher_heartbeat
from endpoints.models import Endpoint, Subscription
from events.filters import ABSENT, first_misses
from events.models import Event
from events.routing import subscription_patterns

# A due delivery nobody took for this long, with no dispatcher heartbeat as recent,
# means no cluster is running.
NO_WORKER_AFTER = timedelta(seconds=30)
ROUTING_LIMIT = 500  # endpoints explained for one broadcast event


@dataclass(frozen=True)
class Reason:
    code: str  # stable, for programs: "delivered", "held_endpoint_off", "waiting_circuit", …
    text: str  # one sentence, in the active language
    short: str  # a few words, for list columns

    def as_dict(self) -> dict:
        return {"code": self.code, "text": self.text, "short": self.short}


def when(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def explain_mismatch(spec, envelope: dict) -> str | None:
    """None if the envelope passes the filter; else which condition failed, with the
    value found: "data.amount gte 100 — found 50"."""
    misses = first_misses(spec, envelope)
    if misses is None:
        return None
    if not misses:
        return _("the filter is invalid")
    parts = []
    for miss in misses:
        condition = f"{miss.path} {miss.op} {json.dumps(miss.value, ensure_ascii=False)[:80]}"
        if miss.found is ABSENT:
            parts.append(
                _("%(condition)s — %(path)s is absent")
                % {"condition": condition, "path": miss.path}
            )
        else:
            found = json.dumps(miss.found, ensure_ascii=False)
            found = found if len(found) <= 80 else found[:79] + "…"
            parts.append(
                _("%(condition)s — found %(found)s") % {"condition": condition, "found": found}
            )
    if len(parts) == 1:
        return parts[0]
    return _("none of: %(alternatives)s") % {"alternatives": "; ".join(parts)}


def last_failure(status_code: int | None, error: str) -> str:
    """ "HTTP 500 …" or the error, short."""
    error = (error or "").strip()
    if status_code:
        return f"HTTP {status_code}" + (f" ({error[:80]})" if error else "")
    return error[:120] or _("no answer")


# --- Deliveries ------------------------------------------------------------------------


def delivery_reasons(deliveries: Sequence[Delivery], *, now: datetime | None = None) -> dict:
    """{delivery pk: Reason} for a page of deliveries, in two queries whatever the page:
    the endpoints (with their partner, their requests in flight, an ordered queue's
    head and, for an open circuit, the latest failure, as subqueries) and their health
    rows — plus the dispatcher's heartbeat when a delivery is long overdue."""
    now = now or timezone.now()
    rows = list(deliveries)
    if not rows:
        return {}
    endpoint_ids = sorted({d.endpoint_id for d in rows})
    health = EndpointHealth.objects.in_bulk(endpoint_ids)
    endpoints = _endpoints_explained().in_bulk(endpoint_ids)
    context = _Context(
        now=now,
        heads={
            pk: (e.head_pk, e.head_event)
            for pk, e in endpoints.items()
            if e.ordered and e.head_pk is not None
        },
        in_flight={pk: e.in_flight or 0 for pk, e in endpoints.items()},
        last_failures={
            pk: last_failure(e.failure_code, e.failure_error)
            for pk, e in endpoints.items()
            if e.failure_code is not None or e.failure_error
        },
    )
    return {
        d.pk: _delivery_reason(d, endpoints[d.endpoint_id], health.get(d.endpoint_id), context)
        for d in rows
    }


def _endpoints_explained():
    """Endpoints with what explaining their deliveries needs, as subqueries evaluated
    only where they apply (CASE): the ordered queue's head for ordered endpoints, the
    latest failure for endpoints whose circuit is not closed."""
    in_flight = (
        Delivery.objects.filter(endpoint_id=OuterRef("pk"), status=DeliveryStatus.IN_FLIGHT)
        .order_by()
        .values("endpoint_id")
        .annotate(n=Count("pk"))
        .values("n")[:1]
    )
    head = Delivery.objects.filter(
        endpoint_id=OuterRef("pk"),
        status__in=(*WAITING_STATUSES, DeliveryStatus.IN_FLIGHT),
        next_trigger__in=ORDERED_TRIGGERS,
    ).order_by("created_at", "pk")
    failed = Delivery.objects.filter(
        endpoint_id=OuterRef("pk"), status__in=(DeliveryStatus.RETRYING, DeliveryStatus.DEAD)
    ).order_by("-created_at")
    circuit_not_closed = Exists(
        EndpointHealth.objects.filter(pk=OuterRef("pk")).exclude(circuit_state=CircuitState.CLOSED)
    )
    return _endpoints().annotate(
        in_flight=Subquery(in_flight, output_field=IntegerField()),
        head_pk=Case(When(ordered=True, then=Subquery(head.values("pk")[:1]))),
        head_event=Case(
            When(ordered=True, then=Subquery(head.values("event__public_id")[:1])),
            output_field=CharField(),
        ),
        failure_code=Case(
            When(circuit_not_closed, then=Subquery(failed.values("last_status_code")[:1])),
            output_field=IntegerField(),
        ),
        failure_error=Case(
            When(circuit_not_closed, then=Subquery(failed.values("last_error")[:1])),
            output_field=CharField(),
        ),
    )


def delivery_reason(delivery: Delivery, *, now: datetime | None = None) -> Reason:
    return delivery_reasons([delivery], now=now)[delivery.pk]


# Never needed to explain anything, and slow to load (decrypted on read).
SECRET_FIELDS = (
    "signing_secret",
    "previous_secrets",
    "signing_key",
    "previous_keys",
    "auth_token",
    "headers",
)


def _endpoints():
    return Endpoint.objects.select_related("partner").defer(*SECRET_FIELDS)


@dataclass
class _Context:
    now: datetime
    heads: dict  # ordered endpoint pk -> (delivery pk, event public id)
    in_flight: dict  # endpoint pk -> requests in flight
    last_failures: dict  # endpoint pk -> its latest failure in words (open circuits)
    _heartbeat: object = None
    _looked: bool = False

    def heartbeat(self) -> datetime | None:
        if not self._looked:
            self._heartbeat, self._looked = dispatcher_heartbeat(), True
        return self._heartbeat


def _delivery_reason(
    delivery: Delivery, endpoint: Endpoint, health: EndpointHealth | None, context: _Context
) -> Reason:
    status = delivery.status
    if status == DeliveryStatus.SUCCEEDED:
        return Reason(
            "delivered",
            _("Delivered %(when)s (HTTP %(code)s, attempt %(n)s).")
            % {
                "when": when(delivery.completed_at or delivery.last_attempt_at),
                "code": delivery.last_status_code or "2xx",
                "n": delivery.attempt_count,
            },
            _("delivered"),
        )
    if status == DeliveryStatus.IN_FLIGHT:
        return Reason(
            "in_flight",
            _("Being sent now (attempt %(n)s, lease until %(until)s).")
            % {"n": delivery.attempt_count + 1, "until": when(delivery.claimed_until)},
            _("sending now"),
        )
    failure = last_failure(delivery.last_status_code, delivery.last_error)
    if status == DeliveryStatus.DEAD:
        return Reason(
            "dead",
            _("Dead after %(n)s attempts; last: %(failure)s.")
            % {"n": delivery.attempt_count, "failure": failure},
            _("dead: %(failure)s") % {"failure": failure[:40]},
        )
    if status == DeliveryStatus.CANCELLED:
        return Reason(
            "cancelled",
            _("Cancelled %(when)s (%(detail)s).")
            % {"when": when(delivery.completed_at), "detail": delivery.last_error or "—"},
            _("cancelled"),
        )
    return _waiting_reason(delivery, endpoint, health, context, failure)


def _waiting_reason(delivery, endpoint, health, context: _Context, failure: str) -> Reason:
    now = context.now
    is_test = delivery.next_trigger == "test"
    if not endpoint.partner.is_active and not is_test:
        return Reason(
            "held_partner_inactive",
            _("Held: partner %(partner)s is inactive; nothing is sent to it.")
            % {"partner": endpoint.partner.name},
            _("held: partner inactive"),
        )
    if not endpoint.enabled and not is_test:
        return Reason("held_endpoint_off", _switched_off_text(endpoint), _("held: endpoint off"))
    if endpoint.awaiting_verification and not is_test:
        return Reason(
            "awaiting_verification",
            _("Held: awaiting verification of %(endpoint)s (challenge sent at %(when)s).")
            % {"endpoint": endpoint.name, "when": when(endpoint.verification_sent_at)},
            _("held: awaiting verification"),
        )
    circuit = health.circuit_state if health else CircuitState.CLOSED
    if circuit == CircuitState.OPEN and not is_test:
        return Reason(
            "waiting_circuit_open",
            _(
                "Waiting: %(endpoint)s's circuit is open since %(since)s after %(failures)s "
                "failures in a row (last: %(failure)s); next probe %(probe)s."
            )
            % {
                "endpoint": endpoint.name,
                "since": when(health.circuit_opened_at),
                "failures": health.consecutive_failures,
                "failure": failure
                if delivery.attempt_count
                else context.last_failures.get(delivery.endpoint_id, _("see the endpoint")),
                "probe": when(health.circuit_retry_at),
            },
            _("waiting: circuit open"),
        )
    if circuit == CircuitState.HALF_OPEN and not is_test:
        return Reason(
            "waiting_probe",
            _(
                "Waiting: %(endpoint)s's circuit is half-open; one probe delivery is being "
                "sent and the rest go when it succeeds."
            )
            % {"endpoint": endpoint.name},
            _("waiting: probe"),
        )
    head = context.heads.get(delivery.endpoint_id)
    if (
        endpoint.ordered
        and delivery.next_trigger in ORDERED_TRIGGERS
        and head is not None
        and head[0] != delivery.pk
    ):
        return Reason(
            "queued_behind",
            _(
                "Queued behind %(event)s: the endpoint is ordered, so its deliveries go one "
                "at a time, in event order."
            )
            % {"event": head[1]},
            _("queued behind %(event)s") % {"event": head[1]},
        )
    due_at = delivery.next_attempt_at
    if due_at is None:
        return Reason("held", _("Held: not due until something releases it."), _("held"))
    if due_at > now:
        if delivery.status == DeliveryStatus.RETRYING:
            return Reason(
                "retry_scheduled",
                _("Attempt %(n)s at %(when)s; last: %(failure)s.")
                % {"n": delivery.attempt_count + 1, "when": when(due_at), "failure": failure},
                _("retry at %(when)s") % {"when": timezone.localtime(due_at).strftime("%H:%M:%S")},
            )
        return Reason(
            "scheduled",
            _("Scheduled for %(when)s.") % {"when": when(due_at)},
            _("scheduled"),
        )
    in_flight = context.in_flight.get(delivery.endpoint_id, 0)
    if not is_test and in_flight >= endpoint.max_in_flight:
        return Reason(
            "waiting_in_flight_cap",
            _(
                "Waiting: %(n)s requests to this endpoint are in flight, its limit "
                "(max in flight %(limit)s)."
            )
            % {"n": in_flight, "limit": endpoint.max_in_flight},
            _("waiting: %(n)s in flight") % {"n": in_flight},
        )
    if not is_test and endpoint.rate_limit_per_second and now - due_at > timedelta(seconds=1):
        return Reason(
            "waiting_rate_limit",
            _("Waiting: rate limit %(rate)s/s; due since %(when)s.")
            % {"rate": endpoint.rate_limit_per_second, "when": when(due_at)},
            _("waiting: rate limit"),
        )
    if now - due_at > NO_WORKER_AFTER:
        beat = context.heartbeat()
        if beat is None or now - beat > NO_WORKER_AFTER:
            return Reason(
                "no_worker",
                _(
                    "Due since %(when)s, but no worker is running: start `manage.py "
                    "qcluster` (last dispatcher heartbeat: %(beat)s)."
                )
                % {"when": when(due_at), "beat": when(beat)},
                _("due: no worker"),
            )
    return Reason(
        "due",
        _("Due since %(when)s; a worker sends it now.") % {"when": when(due_at)},
        _("due"),
    )


def switched_off_text(endpoint: Endpoint) -> str:
    """ "Switched off by sam on … — reason." (or automatically, or by a 410)."""
    values = {
        "when": when(endpoint.disabled_at),
        "by": endpoint.disabled_by or "—",
        "reason": endpoint.disabled_reason or "—",
    }
    if endpoint.disabled_kind == Endpoint.DisabledBy.GONE:
        text = _("Switched off %(when)s because the receiver answered 410 Gone.")
    elif endpoint.disabled_kind == Endpoint.DisabledBy.AUTO:
        text = _("Switched off automatically %(when)s — %(reason)s.")
    else:
        text = _("Switched off by %(by)s on %(when)s — %(reason)s.")
    return text % values


def _switched_off_text(endpoint: Endpoint) -> str:
    return _("Held: %(why)s It is sent when the endpoint is switched on again.") % {
        "why": switched_off_text(endpoint)
    }


# --- Endpoints -------------------------------------------------------------------------


def endpoint_state(endpoint: Endpoint, health: EndpointHealth | None) -> Reason:
    """How delivery to an endpoint stands, in words: off (by whom, why), awaiting
    verification (since), circuit open (since, after how many failures, next probe),
    probing, failing, delivering."""
    if not endpoint.enabled:
        who = {
            Endpoint.DisabledBy.GONE: _("off: 410 Gone"),
            Endpoint.DisabledBy.AUTO: _("off: failing"),
        }.get(endpoint.disabled_kind, _("off: by %(by)s") % {"by": endpoint.disabled_by or "—"})
        return Reason(f"off_{endpoint.disabled_kind or 'manual'}", switched_off_text(endpoint), who)
    if endpoint.awaiting_verification:
        text = _(
            "Awaiting verification since %(when)s: deliveries are held until the endpoint "
            "answers the challenge (or the partner pastes it)."
        )
        return Reason(
            "awaiting_verification",
            text % {"when": when(endpoint.verification_sent_at)},
            _("awaiting verification"),
        )
    state = health.circuit_state if health else CircuitState.CLOSED
    if state == CircuitState.OPEN:
        return Reason(
            "circuit_open",
            _(
                "Circuit open since %(since)s after %(failures)s failures in a row; next "
                "probe %(probe)s. Deliveries wait."
            )
            % {
                "since": when(health.circuit_opened_at),
                "failures": health.consecutive_failures,
                "probe": when(health.circuit_retry_at),
            },
            _("circuit open"),
        )
    if state == CircuitState.HALF_OPEN:
        return Reason(
            "probing",
            _("Circuit half-open: a probe delivery is being sent; the rest wait for it."),
            _("probing"),
        )
    if health and health.consecutive_failures:
        return Reason(
            "failing",
            _("Delivering, but failing since %(since)s (%(failures)s failures in a row).")
            % {"since": when(health.failing_since), "failures": health.consecutive_failures},
            _("failing"),
        )
    return Reason("delivering", _("On; the circuit is closed: delivering."), _("delivering"))


# --- Events ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    endpoint: Endpoint
    outcome: str  # "delivery", "not_subscribed", "filtered", "endpoint_off", "partner_inactive",
    #               "created_later", "other_target", "unknown"
    text: str
    delivery: Delivery | None = None
    reason: Reason | None = None  # the delivery's, when there is one

    def as_dict(self) -> dict:
        return {
            "endpoint": self.endpoint.public_id,
            "endpoint_name": self.endpoint.name,
            "partner": self.endpoint.partner.public_id,
            "outcome": self.outcome,
            "reason": self.text,
            "delivery": self.delivery.public_id if self.delivery else None,
            "status": self.delivery.status if self.delivery else None,
        }


def event_routing(
    event: Event, *, partner=None, now: datetime | None = None, limit: int = ROUTING_LIMIT
) -> list[Route]:
    """For every endpoint the event could have gone to — its partner's, or every
    endpoint for a broadcast (only `partner`'s when given) — whether it got a delivery,
    and if not, why."""
    now = now or timezone.now()
    candidates = _endpoints().order_by("partner__name", "name", "pk")
    if event.partner_id is not None:
        candidates = candidates.filter(partner_id=event.partner_id)
    if partner is not None:
        candidates = candidates.filter(partner=partner)
    endpoints = list(candidates[:limit])
    deliveries = {
        d.endpoint_id: d
        for d in Delivery.objects.filter(event=event, endpoint__in=endpoints).select_related(
            "event"
        )
    }
    reasons = delivery_reasons(list(deliveries.values()), now=now)
    type_name = event.event_type.name
    patterns = subscription_patterns(type_name)
    subscriptions: dict[int, list] = {}
    for endpoint_id, pattern, spec in (
        Subscription.objects.filter(endpoint__in=endpoints)
        .order_by("event_type")
        .values_list("endpoint_id", "event_type", "filter")
    ):
        subscriptions.setdefault(endpoint_id, []).append((pattern, spec))
    envelope = None if event.is_expunged else json.loads(event.body)
    switches = _switches_before(event, [e for e in endpoints if e.pk not in deliveries])
    routes = []
    for endpoint in endpoints:
        delivery = deliveries.get(endpoint.pk)
        if delivery is not None:
            reason = reasons[delivery.pk]
            routes.append(Route(endpoint, "delivery", reason.text, delivery, reason))
            continue
        routes.append(
            _no_delivery(
                endpoint,
                event,
                type_name,
                patterns,
                subscriptions.get(endpoint.pk, []),
                envelope,
                switches.get(endpoint.pk),
            )
        )
    return routes


def _no_delivery(endpoint, event, type_name, patterns, subs, envelope, switch) -> Route:
    if type_name in TEST_LIKE_EVENT_TYPES:
        return Route(
            endpoint,
            "other_target",
            _("A test event is sent only to the endpoint it was sent to.")
            if type_name == "webhookhub.test"
            else _("A verification challenge is sent only to the endpoint it verifies."),
        )
    if endpoint.created_at > event.created_at:
        return Route(
            endpoint,
            "created_later",
            _("The endpoint was registered %(when)s, after this event.")
            % {"when": when(endpoint.created_at)},
        )
    matching = [(pattern, spec) for pattern, spec in subs if pattern in patterns]
    if not matching:
        listed = ", ".join(pattern for pattern, _spec in subs) or "—"
        return Route(
            endpoint,
            "not_subscribed",
            _("Not subscribed to %(type)s (subscribed to: %(listed)s).")
            % {"type": type_name, "listed": listed},
        )
    if envelope is None and (endpoint.filter or any(spec for _pattern, spec in matching)):
        return Route(
            endpoint,
            "unknown",
            _("Its filter cannot be checked: %(notice)s") % {"notice": event.expunged_notice()},
        )
    own = explain_mismatch(endpoint.filter, envelope)
    if own is not None:
        return Route(
            endpoint,
            "filtered",
            _("The endpoint's payload filter did not match: %(why)s.") % {"why": own},
        )
    if all(spec for _pattern, spec in matching):
        misses = [(pattern, explain_mismatch(spec, envelope)) for pattern, spec in matching]
        if all(why is not None for _pattern, why in misses):
            pattern, why = misses[0]
            return Route(
                endpoint,
                "filtered",
                _("The filter of its subscription to %(pattern)s did not match: %(why)s.")
                % {"pattern": pattern, "why": why},
            )
    if switch is not None and switch.action == Action.ENDPOINT_DISABLED:
        return Route(
            endpoint,
            "endpoint_off",
            _(
                "The endpoint was off when the event was published (switched off by %(by)s "
                "on %(when)s — %(reason)s)."
            )
            % {"by": switch.actor, "when": when(switch.at), "reason": switch.reason or "—"},
        )
    if not endpoint.enabled and endpoint.disabled_at and endpoint.disabled_at <= event.created_at:
        return Route(
            endpoint,
            "endpoint_off",
            _("The endpoint was off when the event was published: %(why)s")
            % {"why": switched_off_text(endpoint)},
        )
    if not endpoint.partner.is_active:
        return Route(
            endpoint,
            "partner_inactive",
            _("Partner %(partner)s is inactive; it receives nothing.")
            % {"partner": endpoint.partner.name},
        )
    return Route(
        endpoint,
        "unknown",
        _(
            "It matches now but got no delivery: its switch, subscriptions or filter were "
            "different when the event was published (they apply within a few seconds)."
        ),
    )


def _switches_before(event: Event, endpoints: list[Endpoint]) -> dict:
    """The last on/off switch of each endpoint before the event was published."""
    if not endpoints:
        return {}
    ids = {e.public_id: e.pk for e in endpoints}
    found = {}
    for entry in AuditEntry.objects.filter(
        object_type="endpoint",
        object_id__in=list(ids),
        action__in=(Action.ENDPOINT_DISABLED, Action.ENDPOINT_ENABLED),
        at__lte=event.created_at,
    ).order_by("object_id", "-at", "-id"):
        found.setdefault(ids[entry.object_id], entry)
    return found
