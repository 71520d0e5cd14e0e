"""What people do to deliveries — retry, replay, recover, cancel, test — for every surface.

The admin, the API and the management commands call these and nothing else. Each takes
`by=` (who asked), which the next attempt records. A re-send is a new attempt on the
same delivery, so the receiver sees the same `webhook-id` and the same bytes.
"""

import json
from collections import defaultdict
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import Action
from audit.services import MAX_IDS, audit_bulk, audit_record
from deliveries import engine, health, lifecycle
from deliveries.dispatch import wake_on_commit
from deliveries.fanout import deliveries_create
from deliveries.models import (
    FAILED_STATUSES,
    RETRYABLE_STATUSES,
    TEST_EVENT_TYPE,
    TEST_LIKE_EVENT_TYPES,
    VERIFICATION_EVENT_TYPE,
    Delivery,
    DeliveryAttempt,
    Trigger,
)
from deliveries.selectors import delivery_test_attempt
from endpoints.models import Endpoint, Partner
from events.models import Event
from events.selectors import endpoint_ids_for_event
from events.services import event_publish


def _resend(queryset: QuerySet, *, trigger: str, by: str) -> list[tuple[int, int]]:
    """Make the selected deliveries due now with `trigger`; wake their endpoints on
    commit. Returns (delivery pk, endpoint pk) of each."""
    with transaction.atomic():
        rows = lifecycle.resend(queryset, trigger=trigger, by=by, now=timezone.now())
        wake_on_commit(list(dict.fromkeys(endpoint_id for _, endpoint_id in rows)))
    return rows


def audit_per_endpoint(
    action: str, rows: list[tuple[int, int]], *, by: str, reason: str = "", details=None
) -> None:
    """One audit entry per endpoint touched by a bulk action on deliveries."""
    if not rows:
        return
    per_endpoint: dict[int, list[int]] = defaultdict(list)
    for pk, endpoint_id in rows:
        per_endpoint[endpoint_id].append(pk)
    shown = [pk for pks in per_endpoint.values() for pk in pks[:MAX_IDS]]
    ids = dict(Delivery.objects.filter(pk__in=shown).values_list("pk", "public_id"))
    endpoints = Endpoint.objects.in_bulk(list(per_endpoint))
    groups = {
        endpoints[endpoint_id]: (len(pks), [ids[pk] for pk in pks[:MAX_IDS] if pk in ids])
        for endpoint_id, pks in per_endpoint.items()
        if endpoint_id in endpoints
    }
    audit_bulk(action, groups, by=by, reason=reason, details=details)


def refuse_if_expunged(event: Event) -> None:
    """Raise a ValidationError (code `expunged`) if the event's payload was erased, or
    if the event was pruned meanwhile.

    Inside the caller's transaction the event row stays locked (FOR NO KEY UPDATE, which
    publishing and delivering never take) until it ends, so an erasure or a prune cannot
    slip in between this check and what the caller queues."""
    erased = (
        Event.objects.filter(pk=event.pk)
        .select_for_update(no_key=True)
        .values_list("expunged_at", flat=True)
    )
    if not erased:
        raise ValidationError(
            _("%(event)s no longer exists (retention).") % {"event": event.public_id}
        )
    if erased[0] is not None:
        raise ValidationError(
            _("The payload of %(event)s was erased at %(when)s: it cannot be sent again.")
            % {"event": event.public_id, "when": erased[0].strftime("%Y-%m-%d %H:%M UTC")},
            code="expunged",
        )


def delivery_retry_now(delivery: Delivery, *, by: str, reason: str = "") -> bool:
    """Send a failed, dead or cancelled delivery again now. False if it is in flight or
    already succeeded (replay the event for that); a ValidationError if its event's
    payload was erased."""
    with transaction.atomic():
        refuse_if_expunged(delivery.event)
        rows = _resend(
            Delivery.objects.filter(pk=delivery.pk, status__in=RETRYABLE_STATUSES),
            trigger=Trigger.MANUAL,
            by=by,
        )
        if rows:
            audit_record(Action.RETRIED, delivery, by=by, reason=reason, count=1)
    return bool(rows)


def deliveries_retry_now(queryset: QuerySet, *, by: str, reason: str = "") -> int:
    """Bulk `delivery_retry_now`; returns how many were queued (others are skipped)."""
    with transaction.atomic():
        rows = _resend(
            queryset.filter(status__in=RETRYABLE_STATUSES), trigger=Trigger.MANUAL, by=by
        )
        audit_per_endpoint(Action.RETRIED, rows, by=by, reason=reason)
    return len(rows)


def delivery_cancel(delivery: Delivery, *, by: str, reason: str = "") -> bool:
    """Stop a waiting delivery from being sent. False unless it was pending/retrying."""
    return bool(deliveries_cancel(Delivery.objects.filter(pk=delivery.pk), by=by, reason=reason))


def deliveries_cancel(queryset: QuerySet, *, by: str, reason: str = "", note: str = "") -> int:
    """Cancel the waiting deliveries among `queryset`; returns how many. The next
    delivery of an ordered endpoint whose head was cancelled becomes due. (`note`: why,
    in each delivery's `last_error`.)"""
    now = timezone.now()
    with transaction.atomic():
        rows = lifecycle.cancel(queryset, by=by, now=now, note=note)
        audit_per_endpoint(Action.CANCELLED, rows, by=by, reason=reason)
        ordered = set(
            Endpoint.objects.filter(pk__in={e for _, e in rows}, ordered=True).values_list(
                "pk", flat=True
            )
        )
        wake_on_commit(lifecycle.release_ordered(sorted(ordered), now=now))
    return len(rows)


def event_replay(
    event: Event,
    *,
    endpoint: Endpoint | None = None,
    partner: Partner | None = None,
    by: str,
    reason: str = "",
    audit: bool = True,
) -> int:
    """Send an event again to one endpoint or to all its subscribed endpoints.

    Existing deliveries get a new attempt (same webhook-id); an endpoint that is
    subscribed now but had no delivery gets one. An endpoint of another partner is
    refused. With `partner`, only that partner's endpoints are candidates (a partner
    replaying a broadcast must not re-send it to everyone). Returns the number of
    deliveries queued. (`audit=False`: the caller writes the audit trail for a batch.)
    An event whose payload was erased is refused (ValidationError, code `expunged`).
    """
    with transaction.atomic():
        refuse_if_expunged(event)
        target_ids = _replay_targets(event, endpoint=endpoint, partner=partner)
        existing = dict(
            event.deliveries.filter(endpoint_id__in=target_ids).values_list("endpoint_id", "pk")
        )
        queued = _resend(
            Delivery.objects.filter(pk__in=existing.values()), trigger=Trigger.REPLAY, by=by
        )
        missing = [pk for pk in target_ids if pk not in existing]
        created = deliveries_create(event, missing, trigger=Trigger.REPLAY, trigger_by=by)
        count = len(queued) + len(created)
        if count and audit:
            audit_record(
                Action.REPLAYED,
                event,
                by=by,
                reason=reason,
                count=count,
                details={"endpoint": endpoint.public_id} if endpoint is not None else {},
            )
    return count


def _replay_targets(
    event: Event, *, endpoint: Endpoint | None, partner: Partner | None
) -> set[int]:
    if endpoint is not None:
        if event.partner_id is not None and endpoint.partner_id != event.partner_id:
            raise ValidationError(
                {"endpoint": "That endpoint does not belong to this event's partner."}
            )
        target_ids = {endpoint.pk}
    else:
        target_ids = set(
            endpoint_ids_for_event(event.event_type.name, event.partner, json.loads(event.body))
        )
        target_ids |= set(event.deliveries.values_list("endpoint_id", flat=True))
    if event.event_type.name == VERIFICATION_EVENT_TYPE:
        # A challenge proves control of one endpoint's URL: it goes to no other endpoint.
        own = set(event.deliveries.values_list("endpoint_id", flat=True))
        if not target_ids <= own and endpoint is not None:
            raise ValidationError(
                {"endpoint": "A verification challenge goes only to the endpoint it verifies."}
            )
        target_ids &= own
    if partner is not None:
        if endpoint is not None and endpoint.partner_id != partner.pk:
            raise ValidationError({"endpoint": "That endpoint does not belong to this partner."})
        target_ids = set(
            Endpoint.objects.filter(pk__in=target_ids, partner=partner).values_list("pk", flat=True)
        )
    return target_ids


def endpoint_failed_since(endpoint: Endpoint, since: datetime) -> QuerySet:
    """Deliveries to `endpoint` created since `since` that have not been received
    (test events and verification challenges are not traffic: they are not recovered)."""
    return Delivery.objects.filter(
        endpoint=endpoint,
        created_at__gte=since,
        status__in=FAILED_STATUSES,
        event__expunged_at__isnull=True,  # never sent again
    ).exclude(event__event_type__name__in=TEST_LIKE_EVENT_TYPES)


def endpoint_recover(endpoint: Endpoint, *, since: datetime, by: str, reason: str = "") -> int:
    """Re-send everything that failed for `endpoint` since `since`; returns how many."""
    if timezone.is_naive(since):
        raise ValidationError({"since": "Give a time with a time zone."})
    if since > timezone.now():
        raise ValidationError({"since": "The time is in the future."})
    with transaction.atomic():
        rows = _resend(endpoint_failed_since(endpoint, since), trigger=Trigger.REPLAY, by=by)
        if rows:
            audit_record(
                Action.RECOVERED,
                endpoint,
                by=by,
                reason=reason,
                count=len(rows),
                details={"since": since.isoformat()},
            )
    return len(rows)


def endpoint_probe_now(endpoint: Endpoint, *, by: str, reason: str = "") -> bool:
    """End an open circuit's cooldown now: a worker sends one delivery as the probe at
    once, and the circuit closes if it succeeds. False if the circuit is not open."""
    with transaction.atomic():
        probed = health.probe_now(endpoint.pk, now=timezone.now())
        if probed:
            audit_record(Action.CIRCUIT_PROBED, endpoint, by=by, reason=reason)
            wake_on_commit([endpoint.pk])
    return probed


def endpoint_close_circuit(endpoint: Endpoint, *, by: str, reason: str = "") -> bool:
    """Close an open or half-open circuit by hand: everything waiting behind it is sent
    now (with the usual cap and rate limit). False if it was closed."""
    with transaction.atomic():
        closed = health.close(endpoint.pk)
        if closed:
            audit_record(Action.CIRCUIT_CLOSED, endpoint, by=by, reason=reason)
            wake_on_commit([endpoint.pk])
    return closed


def endpoint_test_queue(endpoint: Endpoint, *, by: str) -> Delivery:
    """Queue a signed `webhookhub.test` event to `endpoint` for the workers; return its
    delivery.

    What web requests call: the HTTP request runs in a worker, never in the web process,
    so a slow or dripping receiver cannot hold a web worker. A test is not gated by the
    switch, the circuit, the concurrency cap or the rate limit, is never retried, and is
    never sent twice (a worker that dies during it leaves it dead, see `dispatch`).
    Raises `Endpoint.DoesNotExist` if the endpoint was deleted meanwhile.
    """
    return _test_delivery(endpoint, by=by, enqueue=True)


def endpoint_send_test(endpoint: Endpoint, *, by: str) -> DeliveryAttempt | None:
    """Send a test event from this process and return its attempt (None if it could not
    be sent). For the command line only (`send_test_event`): it waits for the receiver
    up to the endpoint's timeout, which no web request may do."""
    delivery = _test_delivery(endpoint, by=by, enqueue=False)
    engine.send_test(delivery)
    # It is due at once, so a running cluster's worker may have taken it first: then
    # that worker sends it, and this waits for its answer (at most the lease).
    wait = engine.lease_for(delivery.endpoint.timeout_seconds).total_seconds()
    return delivery_test_attempt(delivery, wait=wait)


def _test_delivery(endpoint: Endpoint, *, by: str, enqueue: bool) -> Delivery:
    with transaction.atomic():
        # Locked: a concurrent DELETE of the endpoint finishes first (DoesNotExist) or
        # waits for this transaction; the delivery never points at a deleted row.
        endpoint = (
            Endpoint.objects.select_for_update().select_related("partner").get(pk=endpoint.pk)
        )
        event, _ = event_publish(
            TEST_EVENT_TYPE,
            {
                "message": "This is a test event from webhookhub.",
                "endpoint": endpoint.public_id,
                "sent_by": by,
            },
            partner=endpoint.partner,
            source="webhookhub",
            endpoint_ids=[endpoint.pk],
            trigger=Trigger.TEST,
            trigger_by=by,
            enqueue=enqueue,
        )
        delivery = event.deliveries.select_related("event", "endpoint").get()
        audit_record(Action.TEST_SENT, endpoint, by=by, details={"delivery": delivery.public_id})
        return delivery
