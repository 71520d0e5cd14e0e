"""What people do to deliveries — retry, replay, recover, cancel, test — for every surface.

The admin, the API and the management commands call these and nothing else. Each takes
`by=` (who asked), which the next attempt records. A re-send is a new attempt on the
same delivery, so the receiver sees the same `webhook-id` and the same bytes.
"""

import json
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from deliveries import engine, lifecycle
from deliveries.dispatch import wake_on_commit
from deliveries.fanout import deliveries_create
from deliveries.models import (
    FAILED_STATUSES,
    RETRYABLE_STATUSES,
    Delivery,
    DeliveryAttempt,
    Trigger,
)
from deliveries.selectors import delivery_test_attempt
from endpoints.models import Endpoint, Partner
from events.models import Event
from events.selectors import endpoint_ids_for_event
from events.services import event_publish

TEST_EVENT_TYPE = "webhookhub.test"


def _resend(queryset: QuerySet, *, trigger: str, by: str) -> list[int]:
    """Make the selected deliveries due now with `trigger`; wake their endpoints on
    commit."""
    with transaction.atomic():
        rows = lifecycle.resend(queryset, trigger=trigger, by=by, now=timezone.now())
        wake_on_commit(list(dict.fromkeys(endpoint_id for _, endpoint_id in rows)))
    return [pk for pk, _ in rows]


def delivery_retry_now(delivery: Delivery, *, by: str) -> bool:
    """Send a failed, dead or cancelled delivery again now. False if it is in flight or
    already succeeded (replay the event for that)."""
    return bool(
        _resend(
            Delivery.objects.filter(pk=delivery.pk, status__in=RETRYABLE_STATUSES),
            trigger=Trigger.MANUAL,
            by=by,
        )
    )


def deliveries_retry_now(queryset: QuerySet, *, by: str) -> int:
    """Bulk `delivery_retry_now`; returns how many were queued (others are skipped)."""
    return len(
        _resend(queryset.filter(status__in=RETRYABLE_STATUSES), trigger=Trigger.MANUAL, by=by)
    )


def delivery_cancel(delivery: Delivery, *, by: str) -> bool:
    """Stop a waiting delivery from being sent. False unless it was pending/retrying."""
    return bool(deliveries_cancel(Delivery.objects.filter(pk=delivery.pk), by=by))


def deliveries_cancel(queryset: QuerySet, *, by: str) -> int:
    """Cancel the waiting deliveries among `queryset`; returns how many. The next
    delivery of an ordered endpoint whose head was cancelled becomes due."""
    now = timezone.now()
    with transaction.atomic():
        rows = lifecycle.cancel(queryset, by=by, now=now)
        ordered = set(
            Endpoint.objects.filter(pk__in={e for _, e in rows}, ordered=True).values_list(
                "pk", flat=True
            )
        )
        wake_on_commit(lifecycle.release_ordered(sorted(ordered), now=now))
    return len(rows)


def event_replay(
    event: Event, *, endpoint: Endpoint | None = None, partner: Partner | None = None, by: str
) -> int:
    """Send an event again to one endpoint or to all its subscribed endpoints.

    Existing deliveries get a new attempt (same webhook-id); an endpoint that is
    subscribed now but had no delivery gets one. An endpoint of another partner is
    refused. With `partner`, only that partner's endpoints are candidates (a partner
    replaying a broadcast must not re-send it to everyone). Returns the number of
    deliveries queued.
    """
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
    if partner is not None:
        if endpoint is not None and endpoint.partner_id != partner.pk:
            raise ValidationError({"endpoint": "That endpoint does not belong to this partner."})
        target_ids = set(
            Endpoint.objects.filter(pk__in=target_ids, partner=partner).values_list("pk", flat=True)
        )
    with transaction.atomic():
        existing = dict(
            event.deliveries.filter(endpoint_id__in=target_ids).values_list("endpoint_id", "pk")
        )
        queued = _resend(
            Delivery.objects.filter(pk__in=existing.values()), trigger=Trigger.REPLAY, by=by
        )
        missing = [pk for pk in target_ids if pk not in existing]
        created = deliveries_create(event, missing, trigger=Trigger.REPLAY, trigger_by=by)
    return len(queued) + len(created)


def endpoint_failed_since(endpoint: Endpoint, since: datetime) -> QuerySet:
    """Deliveries to `endpoint` created since `since` that have not been received."""
    return Delivery.objects.filter(
        endpoint=endpoint, created_at__gte=since, status__in=FAILED_STATUSES
    )


def endpoint_recover(endpoint: Endpoint, *, since: datetime, by: str) -> int:
    """Re-send everything that failed for `endpoint` since `since`; returns how many."""
    if timezone.is_naive(since):
        raise ValidationError({"since": "Give a time with a time zone."})
    if since > timezone.now():
        raise ValidationError({"since": "The time is in the future."})
    return len(_resend(endpoint_failed_since(endpoint, since), trigger=Trigger.REPLAY, by=by))


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
        return event.deliveries.select_related("event", "endpoint").get()
