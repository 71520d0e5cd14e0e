"""Extension hooks: Django signals sent after the change they report is committed.

Every signal is sent with `sender` = the notification's class and one keyword
argument, `notification`: a frozen dataclass of plain values (ids, names, strings,
numbers, aware datetimes) — never a model instance, so a receiver cannot trigger a
lazy query or hold a stale row. A receiver is called once the transaction that made
the change commits (nothing is sent if it rolls back), with `send_robust`: one that
raises is logged and the next one still runs; delivery never notices.

    from django.dispatch import receiver
    from webhookhub.signals import delivery_dead

    @receiver(delivery_dead)
    def page_someone(sender, notification, **kwargs):
        ...  # notification.delivery_id, notification.endpoint.name, …

Cost: with no receiver connected a signal costs one `has_listeners()` check, and its
dataclass is never built. `WEBHOOKHUB_NOTIFIERS` (`webhookhub.notifiers`) connects only
the signals its notifiers ask for. docs/extending.md lists the arguments.

This module imports nothing of the apps (events and deliveries both send signals).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EndpointInfo:
    """The endpoint a notification is about."""

    endpoint_id: str  # ep_…
    name: str
    url: str
    enabled: bool
    partner_id: str  # prt_…
    partner_name: str
    contact_email: str  # the partner's contact ("" if none)


@dataclass(frozen=True)
class EventPublished:
    event_id: str  # evt_…
    event_type: str
    partner_id: str | None  # None: a broadcast
    source: str
    occurred_at: datetime
    deliveries: int  # deliveries created (0: nobody subscribed)


@dataclass(frozen=True)
class DeliveryOutcome:
    """One recorded attempt of a delivery (`delivery_succeeded`, `delivery_failed`,
    `delivery_dead`)."""

    delivery_id: str  # dlv_…
    event_id: str
    event_type: str
    endpoint: EndpointInfo
    attempt: int  # 1-based number of this attempt
    trigger: str  # auto, retry, replay, manual, test
    status_code: int | None
    error: str  # "" on success
    duration_ms: int
    outcome: str  # succeeded, failed (to be retried), dead (that was its last attempt)
    next_attempt_at: datetime | None  # failed: when it is tried again; else None


@dataclass(frozen=True)
class EndpointSwitched:
    """`endpoint_disabled` / `endpoint_enabled`."""

    endpoint: EndpointInfo
    enabled: bool  # True: switched on (`endpoint_enabled`); False: off
    by: str  # who: "system" when webhookhub switched it off itself, else the actor
    kind: str  # disabled: manual, auto (failing for the window), gone (410); enabled: ""
    reason: str


@dataclass(frozen=True)
class CircuitChanged:
    """`circuit_opened` (a closed circuit opened: probes from now on) / `circuit_closed`
    (a probe succeeded, or support closed it)."""

    endpoint: EndpointInfo
    opened: bool  # True: `circuit_opened`; False: `circuit_closed`
    consecutive_failures: int
    failing_since: datetime | None
    retry_at: datetime | None  # opened: when the first probe may go


@dataclass(frozen=True)
class EndpointFailing:
    """`endpoint_failing`: a warning stage of a failure streak was reached (each stage
    once per streak), and the rows of the failure digest."""

    endpoint: EndpointInfo
    stage: int  # percent of the auto-disable window: 50, 75, 90 (0 in a digest)
    failing_since: datetime
    disable_at: datetime  # when it is switched off unless it succeeds before
    consecutive_failures: int
    last_error: str


@dataclass(frozen=True)
class FailureDigest:
    """`failure_digest`: the hourly list of failing endpoints not reported for a day."""

    endpoints: tuple[EndpointFailing, ...]


event_published = Signal()  # notification: EventPublished
delivery_succeeded = Signal()  # notification: DeliveryOutcome
delivery_failed = Signal()  # notification: DeliveryOutcome (failed, to be retried)
delivery_dead = Signal()  # notification: DeliveryOutcome (its last attempt failed)
endpoint_disabled = Signal()  # notification: EndpointSwitched
endpoint_enabled = Signal()  # notification: EndpointSwitched
circuit_opened = Signal()  # notification: CircuitChanged
circuit_closed = Signal()  # notification: CircuitChanged
endpoint_failing = Signal()  # notification: EndpointFailing
failure_digest = Signal()  # notification: FailureDigest

SIGNALS: dict[str, Signal] = {
    "event_published": event_published,
    "delivery_succeeded": delivery_succeeded,
    "delivery_failed": delivery_failed,
    "delivery_dead": delivery_dead,
    "endpoint_disabled": endpoint_disabled,
    "endpoint_enabled": endpoint_enabled,
    "circuit_opened": circuit_opened,
    "circuit_closed": circuit_closed,
    "endpoint_failing": endpoint_failing,
    "failure_digest": failure_digest,
}


def send_on_commit(signal: Signal, build: Callable[[], object | list[object]]) -> None:
    """Send `signal` once the current transaction commits (at once outside one), with
    what `build()` returns — one notification or a list of them.

    Nothing is built if nobody listens; `build` runs now (it may read the rows of the
    transaction; a rollback then sends nothing). A failing build is logged."""
    if not signal.has_listeners():
        return
    try:
        built = build()
    except Exception:
        logger.exception("could not build a notification")
        return
    notifications = built if isinstance(built, list) else [built]
    if notifications:
        transaction.on_commit(lambda: _send(signal, notifications), robust=True)


def _send(signal: Signal, notifications: list) -> None:
    for notification in notifications:
        for receiver, result in signal.send_robust(
            sender=type(notification), notification=notification
        ):
            if isinstance(result, Exception):
                logger.error("signal receiver %r raised", receiver, exc_info=result)
