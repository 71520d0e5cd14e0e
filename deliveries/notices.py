"""What people are told about delivery health: mails and webhookhub's own events.

Apart from the state machine (`deliveries.health`): these run after the state they
report is committed, and a notice that fails is logged, never breaks delivery. The
signals of `webhookhub.signals` are sent from here (and from `publish()`); mails are a
notifier's (`webhookhub.notifiers.EmailNotifier`), hearing those signals.
"""

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import transaction

from deliveries.models import Delivery, Trigger
from endpoints.models import Endpoint
from events.services import publish
from webhookhub import signals

logger = logging.getLogger(__name__)


def _operational_event(event_type: str, endpoint: Endpoint, data: dict) -> None:
    try:
        with transaction.atomic():
            publish(event_type, data, partner=endpoint.partner, source="webhookhub")
    except Exception:  # a notice must never break delivery recording
        logger.exception("could not publish %s", event_type)


def endpoint_recovered(endpoint: Endpoint, *, released: int) -> None:
    _operational_event(
        "webhookhub.endpoint.recovered",
        endpoint,
        {"endpoint": endpoint.public_id, "name": endpoint.name, "released": released},
    )


def endpoint_disabled(endpoint: Endpoint) -> None:
    """Publish `webhookhub.endpoint.disabled` (webhookhub switched it off itself). The
    e-mail is the `endpoint_disabled` signal's (`webhookhub.notifiers.EmailNotifier`)."""
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


def delivery_dead(delivery) -> None:
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


def endpoint_info(endpoint: Endpoint) -> signals.EndpointInfo:
    partner = endpoint.partner
    return signals.EndpointInfo(
        endpoint_id=endpoint.public_id,
        name=endpoint.name,
        url=endpoint.url,
        enabled=endpoint.enabled,
        partner_id=partner.public_id,
        partner_name=partner.name,
        contact_email=partner.contact_email or "",
    )


def _endpoint(endpoint_id: int) -> Endpoint | None:
    return Endpoint.objects.select_related("partner").filter(pk=endpoint_id).first()


def endpoint_switched(endpoint_id: int, *, enabled: bool, by: str) -> None:
    """`endpoint_enabled` / `endpoint_disabled`, read once the switch is committed."""
    signal = signals.endpoint_enabled if enabled else signals.endpoint_disabled
    if not signal.has_listeners():
        return

    def send() -> None:
        endpoint = _endpoint(endpoint_id)
        if endpoint is not None:
            signals.send_on_commit(
                signal,
                lambda: signals.EndpointSwitched(
                    endpoint=endpoint_info(endpoint),
                    enabled=enabled,
                    by=by,
                    kind=endpoint.disabled_kind,
                    reason=endpoint.disabled_reason,
                ),
            )

    # Read after the commit: the switch's reason and kind are in the committed row.
    transaction.on_commit(send, robust=True)


def circuit_changed(endpoint_id: int, *, opened: bool) -> None:
    """`circuit_opened` / `circuit_closed` (call after the change is committed)."""
    signal = signals.circuit_opened if opened else signals.circuit_closed

    def build():
        endpoint = Endpoint.objects.select_related("partner", "health").get(pk=endpoint_id)
        health = endpoint.health
        return signals.CircuitChanged(
            endpoint=endpoint_info(endpoint),
            opened=opened,
            consecutive_failures=health.consecutive_failures,
            failing_since=health.failing_since,
            retry_at=health.circuit_retry_at,
        )

    signals.send_on_commit(signal, build)


def last_error(endpoint_id: int) -> str:
    """What the endpoint's most recent failed attempt got (status and body, or the
    network error)."""
    return (
        Delivery.objects.filter(endpoint_id=endpoint_id, last_attempt_at__isnull=False)
        .exclude(last_error="")
        .order_by("-last_attempt_at")
        .values_list("last_error", flat=True)
        .first()
        or ""
    )


def failing(endpoint: Endpoint, *, stage: int, window: timedelta) -> signals.EndpointFailing:
    health = endpoint.health
    return signals.EndpointFailing(
        endpoint=endpoint_info(endpoint),
        stage=stage,
        failing_since=health.failing_since,
        disable_at=health.failing_since + window,
        consecutive_failures=health.consecutive_failures,
        last_error=last_error(endpoint.pk) if stage else "",
    )


def endpoint_failing(endpoint_id: int, *, stage: int, window: timedelta) -> None:
    """A warning stage was reached (each once per streak: `deliveries.health`): publish
    `webhookhub.endpoint.failing` and send `endpoint_failing` (the e-mail)."""
    endpoint = Endpoint.objects.select_related("partner", "health").filter(pk=endpoint_id).first()
    if endpoint is None or endpoint.health.failing_since is None:
        return
    notice = failing(endpoint, stage=stage, window=window)
    _operational_event(
        "webhookhub.endpoint.failing",
        endpoint,
        {
            "endpoint": endpoint.public_id,
            "name": endpoint.name,
            "url": endpoint.url,
            "stage": stage,
            "failing_since": notice.failing_since.isoformat(),
            "disable_at": notice.disable_at.isoformat(),
            "consecutive_failures": notice.consecutive_failures,
            "last_error": notice.last_error,
        },
    )
    signals.send_on_commit(signals.endpoint_failing, lambda: notice)


def failure_digest(endpoints: Sequence[Endpoint], *, window: timedelta) -> None:
    """`failure_digest`: the failing endpoints of the hourly digest (the mails are
    `EmailNotifier`'s), sent when the caller's transaction commits."""
    signals.send_on_commit(
        signals.failure_digest,
        lambda: signals.FailureDigest(
            endpoints=tuple(failing(e, stage=0, window=window) for e in endpoints)
        ),
    )


def attempts_recorded(
    outcomes: Sequence, *, dead: set[int], retry_at: dict[int, datetime | None]
) -> None:
    """`delivery_succeeded` / `delivery_failed` / `delivery_dead` for a recorded wave
    (`outcomes`: `deliveries.recording.Outcome`). Builds nothing nobody listens to."""
    wanted = [
        s
        for s in (signals.delivery_succeeded, signals.delivery_failed, signals.delivery_dead)
        if s.has_listeners()
    ]
    if not wanted:
        return
    infos: dict[int, signals.EndpointInfo] = {}

    def outcome(o) -> signals.DeliveryOutcome:
        delivery, result = o.delivery, o.result
        kind = "succeeded" if result.succeeded else "dead" if delivery.pk in dead else "failed"
        if delivery.endpoint_id not in infos:
            infos[delivery.endpoint_id] = endpoint_info(delivery.endpoint)
        return signals.DeliveryOutcome(
            delivery_id=delivery.public_id,
            event_id=delivery.event.public_id,
            event_type=delivery.event.event_type.name,
            endpoint=infos[delivery.endpoint_id],
            attempt=delivery.attempt_count + 1,
            trigger=str(delivery.next_trigger),
            status_code=result.status_code,
            error="" if result.succeeded else (result.error_message or result.error_kind or ""),
            duration_ms=result.duration_ms,
            outcome=kind,
            next_attempt_at=retry_at.get(delivery.pk) if kind == "failed" else None,
        )

    signals.send_on_commit(
        signals.delivery_succeeded, lambda: [outcome(o) for o in outcomes if o.result.succeeded]
    )
    signals.send_on_commit(
        signals.delivery_failed,
        lambda: [
            outcome(o)
            for o in outcomes
            if not o.result.succeeded and (o.delivery.pk not in dead or _is_test(o))
        ],
    )
    signals.send_on_commit(
        signals.delivery_dead,
        lambda: [outcome(o) for o in outcomes if o.delivery.pk in dead and not _is_test(o)],
    )


def _is_test(outcome) -> bool:
    return outcome.delivery.next_trigger == Trigger.TEST
