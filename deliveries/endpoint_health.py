"""Endpoint health after each batch of attempts: circuit breaker, auto-disable, 410,
recovery, and the notices they send. The one place that keeps those fields true.

Called inside the transaction that records the attempts, so an attempt and the
circuit state it caused are committed together. Healthy endpoints cost two
conditional UPDATEs that match nothing; only failures lock the endpoint row.
"""

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from deliveries.models import Delivery, DeliveryStatus
from deliveries.policy import (
    CircuitPolicy,
    circuit_cooldown,
    circuit_should_open,
    should_auto_disable,
)
from endpoints.models import CircuitState, Endpoint

logger = logging.getLogger(__name__)

WAITING = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)


def circuit_policy() -> CircuitPolicy:
    return CircuitPolicy(
        threshold=settings.WEBHOOKHUB_CIRCUIT_FAILURE_THRESHOLD,
        cooldown=settings.WEBHOOKHUB_CIRCUIT_COOLDOWN_SECONDS,
        max_cooldown=settings.WEBHOOKHUB_CIRCUIT_MAX_COOLDOWN_SECONDS,
        disable_after=settings.WEBHOOKHUB_AUTO_DISABLE_AFTER_HOURS * 3600,
    )


def endpoints_after_attempts(outcomes: Sequence, *, now: datetime) -> list[int]:
    """Update each endpoint's health from these outcomes (in completion order).

    Returns delivery ids that became due (a released backlog) for the caller to enqueue.
    Healthy endpoints cost two queries per batch, whatever the number of endpoints.
    """
    by_endpoint = defaultdict(list)
    for outcome in outcomes:
        by_endpoint[outcome.delivery.endpoint_id].append(outcome)
    succeeded, failed = [], {}
    for endpoint_id, group in by_endpoint.items():
        if any(o.result.status_code == 410 for o in group):
            endpoint_gone(endpoint_id, now=now)
            continue
        trailing = 0
        for outcome in group:
            trailing = 0 if outcome.result.succeeded else trailing + 1
        if trailing < len(group):
            succeeded.append(endpoint_id)
        if trailing:
            failed[endpoint_id] = trailing
    released = endpoints_succeeded(succeeded, now=now) if succeeded else []
    for endpoint_id, failures in failed.items():
        endpoint_failed(endpoint_id, failures, now=now)
    return released


def endpoints_succeeded(endpoint_ids: list[int], *, now: datetime) -> list[int]:
    """Reset the failure streak of these endpoints; close open circuits (recovered:
    release the backlog, publish the notice)."""
    Endpoint.objects.filter(
        pk__in=endpoint_ids, circuit_state=CircuitState.CLOSED, consecutive_failures__gt=0
    ).update(consecutive_failures=0, failing_since=None)
    opened = list(
        Endpoint.objects.filter(pk__in=endpoint_ids)
        .exclude(circuit_state=CircuitState.CLOSED)
        .values_list("pk", flat=True)
    )
    released = []
    for endpoint_id in opened:
        released += endpoint_recovered(endpoint_id, now=now)
    return released


def endpoint_recovered(endpoint_id: int, *, now: datetime) -> list[int]:
    closed = Endpoint.objects.filter(
        pk=endpoint_id, circuit_state__in=(CircuitState.OPEN, CircuitState.HALF_OPEN)
    ).update(
        circuit_state=CircuitState.CLOSED,
        circuit_retry_at=None,
        circuit_open_count=0,
        consecutive_failures=0,
        failing_since=None,
    )
    if not closed:
        return []
    backlog = list(
        Delivery.objects.filter(
            endpoint_id=endpoint_id, status__in=WAITING, next_attempt_at__gt=now
        ).values_list("pk", flat=True)
    )
    Delivery.objects.filter(pk__in=backlog).update(next_attempt_at=now, updated_at=now)
    endpoint = Endpoint.objects.select_related("partner").get(pk=endpoint_id)
    logger.info("endpoint recovered", extra={"endpoint_id": endpoint.public_id})
    _operational_event(
        "webhookhub.endpoint.recovered",
        endpoint,
        {"endpoint": endpoint.public_id, "name": endpoint.name, "released": len(backlog)},
    )
    return backlog


def endpoint_failed(endpoint_id: int, failures: int, *, now: datetime) -> None:
    """Count failures; open (or re-open) the circuit; auto-disable after the window."""
    policy = circuit_policy()
    endpoint = Endpoint.objects.select_for_update().select_related("partner").get(pk=endpoint_id)
    endpoint.consecutive_failures += failures
    endpoint.failing_since = endpoint.failing_since or now
    if endpoint.circuit_state == CircuitState.HALF_OPEN or (
        endpoint.circuit_state == CircuitState.CLOSED
        and circuit_should_open(endpoint.consecutive_failures, policy)
    ):
        endpoint.circuit_open_count += 1
        endpoint.circuit_state = CircuitState.OPEN
        endpoint.circuit_opened_at = endpoint.circuit_opened_at or now
        endpoint.circuit_retry_at = now + circuit_cooldown(endpoint.circuit_open_count, policy)
        logger.warning(
            "circuit opened",
            extra={"endpoint_id": endpoint.public_id, "failures": endpoint.consecutive_failures},
        )
    endpoint.save(
        update_fields=[
            "consecutive_failures", "failing_since", "circuit_state", "circuit_opened_at",
            "circuit_open_count", "circuit_retry_at",
        ]
    )  # fmt: skip
    if endpoint.enabled and should_auto_disable(endpoint.failing_since, now, policy):
        since = endpoint.failing_since.strftime("%Y-%m-%d %H:%M UTC")
        endpoint_auto_disable(
            endpoint, kind=Endpoint.DisabledBy.AUTO, reason=f"auto: failing since {since}"
        )


def endpoint_gone(endpoint_id: int, *, now: datetime) -> None:
    endpoint = Endpoint.objects.select_related("partner").get(pk=endpoint_id)
    if endpoint.enabled:
        endpoint_auto_disable(
            endpoint, kind=Endpoint.DisabledBy.GONE, reason="receiver answered 410"
        )


def endpoint_auto_disable(endpoint: Endpoint, *, kind: str, reason: str) -> None:
    """Switch an endpoint off on the system's initiative and tell people about it."""
    from endpoints.services import endpoint_disable

    if endpoint_disable(endpoint, by="system", reason=reason, kind=kind):
        logger.warning(
            "endpoint disabled", extra={"endpoint_id": endpoint.public_id, "reason": reason}
        )
        notify_disabled(endpoint)


def notify_disabled(endpoint: Endpoint) -> None:
    """E-mail the partner's contact and the staff, and publish the operational event."""
    _operational_event(
        "webhookhub.endpoint.disabled",
        endpoint,
        {
            "endpoint": endpoint.public_id,
            "name": endpoint.name,
            "url": endpoint.url,
            "reason": endpoint.disabled_reason,
            "kind": endpoint.disabled_kind,
            "disabled_at": endpoint.disabled_at.isoformat() if endpoint.disabled_at else None,
        },
    )
    recipients = [a for a in [endpoint.partner.contact_email, *staff_emails()] if a]
    if not recipients:
        return
    subject = f"[webhookhub] Endpoint {endpoint.name} was disabled"
    body = (
        f"The webhook endpoint {endpoint.name} ({endpoint.public_id}) of "
        f"{endpoint.partner.name} was switched off.\n\nURL: {endpoint.url}\n"
        f"Reason: {endpoint.disabled_reason}\n\nIts waiting deliveries are kept and go out "
        "when the endpoint is switched on again.\n"
    )
    transaction.on_commit(
        lambda: send_mail(subject, body, None, recipients, fail_silently=True), robust=True
    )


def staff_emails() -> list[str]:
    return [address for _, address in settings.ADMINS]


def delivery_died(delivery) -> None:
    """Publish `webhookhub.delivery.dead` for a delivery that used all its attempts."""
    event = delivery.event
    type_name = event.event_type.name
    if type_name.startswith("webhookhub."):
        return  # never an operational event about an operational event
    _operational_event(
        "webhookhub.delivery.dead",
        delivery.endpoint,
        {
            "delivery": delivery.public_id,
            "event": event.public_id,
            "event_type": type_name,
            "endpoint": delivery.endpoint.public_id,
            "attempts": delivery.attempt_count + 1,
            "last_status_code": delivery.last_status_code,
        },
    )


def _operational_event(event_type: str, endpoint: Endpoint, data: dict) -> None:
    from events.services import publish

    try:
        with transaction.atomic():
            publish(event_type, data, partner=endpoint.partner, source="webhookhub")
    except Exception:  # a notice must never break delivery recording
        logger.exception("could not publish %s", event_type)


@transaction.atomic
def failure_digest(*, now: datetime | None = None) -> int:
    """E-mail the endpoints that are failing: at most once per endpoint per day.

    One mail per partner contact listing its failing endpoints, one to the staff
    listing all. Returns the number of endpoints reported.
    """
    now = now or timezone.now()
    day_ago = now - timedelta(days=1)
    endpoints = list(
        Endpoint.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(enabled=True, failing_since__isnull=False)
        .exclude(circuit_state=CircuitState.CLOSED)
        .filter(Q(failure_notice_at__isnull=True) | Q(failure_notice_at__lt=day_ago))
        .select_related("partner")
        .order_by("partner__name", "name")
    )
    if not endpoints:
        return 0
    lines = {
        e.pk: f"- {e.partner.name} / {e.name} ({e.public_id}) {e.url}: failing since "
        f"{e.failing_since:%Y-%m-%d %H:%M} UTC, {e.consecutive_failures} failed attempts in a row"
        for e in endpoints
    }
    by_contact = defaultdict(list)
    for e in endpoints:
        if e.partner.contact_email:
            by_contact[e.partner.contact_email].append(lines[e.pk])
    messages = [(address, rows) for address, rows in by_contact.items()]
    messages += [(address, list(lines.values())) for address in staff_emails()]
    Endpoint.objects.filter(pk__in=list(lines)).update(failure_notice_at=now)
    for address, rows in messages:
        text = "These webhook endpoints are failing; deliveries to them are waiting:\n\n"
        text += "\n".join(rows)
        transaction.on_commit(
            lambda a=address, t=text: send_mail(
                "[webhookhub] Failing webhook endpoints", t, None, [a], fail_silently=True
            ),
            robust=True,
        )
    return len(endpoints)
