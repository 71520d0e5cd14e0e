"""Notifiers: what `WEBHOOKHUB_NOTIFIERS` plugs into the signals of `webhookhub.signals`.

A notifier is a dotted path to a callable — a function, or a class instantiated once
with no arguments — called with one notification dataclass. It may say which signals
it wants in a `signals` attribute (names of `webhookhub.signals.SIGNALS`; default: all)
and refuse single notifications with an `accepts(notification)` method. Only the
signals some notifier wants are connected, so the others cost nothing.

Notifiers run after commit, in the process that made the change — a worker, the
housekeeping task, a command — except in a web request: there the call is queued as a
django-q2 task (`webhookhub.notifiers.notify`) and a worker makes it, so no request
waits on a mail server or a chat service. A notifier that raises is logged; delivery
and the other notifiers go on.

Shipped: `EmailNotifier` (on by default: the mails about failing and switched-off
endpoints) and `SlackNotifier` (a Slack-compatible incoming webhook). docs/extending.md.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from datetime import datetime
from functools import cache

from django.conf import settings
from django.core.mail import send_mail
from django.core.signals import request_finished, request_started, setting_changed
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from webhookhub import signals
from webhookhub.signals import (
    CircuitChanged,
    DeliveryOutcome,
    EndpointFailing,
    EndpointSwitched,
    EventPublished,
    FailureDigest,
)

logger = logging.getLogger(__name__)

NOTIFY_TASK = "webhookhub.notifiers.notify"

# --- wiring ------------------------------------------------------------------------------

_web = threading.local()  # .active: this thread is serving a web request


def _request_started(**kwargs) -> None:
    _web.active = True


def _request_finished(**kwargs) -> None:
    _web.active = False


def in_web_request() -> bool:
    return getattr(_web, "active", False)


@cache
def _load(path: str):
    target = import_string(path)
    return target() if isinstance(target, type) else target


def _wanted(notifier) -> set[str]:
    names = getattr(notifier, "signals", None)
    return set(signals.SIGNALS) if names is None else set(names) & set(signals.SIGNALS)


_connected: list = []


def connect() -> None:
    """(Re)connect the configured notifiers: one receiver per (notifier, signal) it wants."""
    for signal, receiver in _connected:
        signal.disconnect(receiver)
    _connected.clear()
    _load.cache_clear()
    for path in settings.WEBHOOKHUB_NOTIFIERS:
        try:
            notifier = _load(path)
        except Exception:
            logger.exception("cannot load notifier %s", path)
            continue
        for name in sorted(_wanted(notifier)):
            receiver = _receiver(path)
            signals.SIGNALS[name].connect(receiver, weak=False)
            _connected.append((signals.SIGNALS[name], receiver))
    request_started.connect(_request_started, dispatch_uid="webhookhub-notifiers-request")
    request_finished.connect(_request_finished, dispatch_uid="webhookhub-notifiers-request")


def _receiver(path: str):
    def receive(sender, notification, **kwargs) -> None:
        notifier = _load(path)
        accepts = getattr(notifier, "accepts", None)
        if accepts is not None and not accepts(notification):
            return
        if in_web_request():
            _enqueue(path, notification)
        else:
            notify(path, notification)

    return receive


def _enqueue(path: str, notification) -> None:
    from django_q.tasks import async_task

    try:
        async_task(NOTIFY_TASK, path, notification, save=False, task_name="notify")
    except Exception:
        logger.exception("could not queue notifier %s", path)


def notify(path: str, notification) -> None:
    """Call one notifier (also the django-q2 task a web request queues); never raises."""
    try:
        _load(path)(notification)
    except Exception:
        logger.exception(
            "notifier %s failed on %s", path, type(notification).__name__, extra={"notifier": path}
        )


def _settings_changed(setting, **kwargs) -> None:
    if setting in ("WEBHOOKHUB_NOTIFIERS", "WEBHOOKHUB_SLACK_WEBHOOK_URL"):
        connect()


setting_changed.connect(_settings_changed, dispatch_uid="webhookhub-notifiers-settings")


# --- e-mail ------------------------------------------------------------------------------


def staff_emails() -> list[str]:
    return [address for _, address in settings.ADMINS]


def _when(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC"


def _remaining(until: datetime) -> str:
    hours = max(0.0, (until - timezone.now()).total_seconds() / 3600)
    if hours >= 48:
        return _("about %(days)s days") % {"days": round(hours / 24)}
    return _("about %(hours)s hours") % {"hours": max(1, round(hours))}


class EmailNotifier:
    """The mails to the partner's contact and the staff (`WEBHOOKHUB_STAFF_EMAILS`):
    an endpoint webhookhub switched off itself (failing for the whole window, 410 Gone),
    each warning stage before that, and the hourly digest of failing endpoints."""

    signals = ("endpoint_disabled", "endpoint_failing", "failure_digest")

    def accepts(self, notification) -> bool:
        # A person's switch-off is theirs to tell; webhookhub tells about its own.
        return not isinstance(notification, EndpointSwitched) or notification.by == "system"

    def __call__(self, notification) -> None:
        if isinstance(notification, EndpointSwitched):
            self.disabled(notification)
        elif isinstance(notification, EndpointFailing):
            self.failing(notification)
        elif isinstance(notification, FailureDigest):
            self.digest(notification)

    @staticmethod
    def _send(subject: str, body: str, recipients: list[str]) -> None:
        recipients = [a for a in dict.fromkeys(recipients) if a]
        if recipients:
            send_mail(subject, body, None, recipients, fail_silently=True)

    def disabled(self, n: EndpointSwitched) -> None:
        e = n.endpoint
        subject = _("[webhookhub] Endpoint %(name)s was disabled") % {"name": e.name}
        body = _(
            "The webhook endpoint %(name)s (%(id)s) of %(partner)s was switched off.\n\n"
            "URL: %(url)s\nReason: %(reason)s\n\nIts waiting deliveries are kept and go out "
            "when the endpoint is switched on again.\n"
        ) % {
            "name": e.name,
            "id": e.endpoint_id,
            "partner": e.partner_name,
            "url": e.url,
            "reason": n.reason,
        }
        self._send(subject, body, [e.contact_email, *staff_emails()])

    def failing(self, n: EndpointFailing) -> None:
        e = n.endpoint
        subject = _(
            "[webhookhub] Endpoint %(name)s is failing and will be disabled in %(remaining)s"
        ) % {"name": e.name, "remaining": _remaining(n.disable_at)}
        body = _(
            "The webhook endpoint %(name)s (%(id)s) of %(partner)s has failed every delivery "
            "since %(since)s (%(failures)s failed attempts in a row): %(stage)s %% of the "
            "time after which webhookhub switches it off.\n\n"
            "URL: %(url)s\nLast error: %(error)s\n"
            "It will be switched off at %(disable_at)s (in %(remaining)s) unless a delivery "
            "succeeds before.\n\n"
            "To fix it: make the receiver answer webhooks with a 2xx status (check the URL, "
            "its TLS certificate, that it accepts POST requests, and its signature "
            "verification). The next successful delivery or test ends the failure, and the "
            "waiting deliveries go out. If it has been switched off, switch it on again in "
            "the portal or the admin (or POST /api/v1/endpoints/{id}/enable/): its waiting "
            "deliveries are kept and go out then.\n"
        ) % {
            "name": e.name,
            "id": e.endpoint_id,
            "partner": e.partner_name,
            "since": _when(n.failing_since),
            "failures": n.consecutive_failures,
            "stage": n.stage,
            "url": e.url,
            "error": n.last_error or _("(none recorded)"),
            "disable_at": _when(n.disable_at),
            "remaining": _remaining(n.disable_at),
        }
        self._send(subject, body, [e.contact_email, *staff_emails()])

    def digest(self, n: FailureDigest) -> None:
        """One mail per partner contact listing its failing endpoints, one to the staff
        listing all."""
        lines = [
            _(
                "- %(partner)s / %(name)s (%(id)s) %(url)s: failing since %(since)s UTC, "
                "%(failures)s failed attempts in a row"
            )
            % {
                "partner": f.endpoint.partner_name,
                "name": f.endpoint.name,
                "id": f.endpoint.endpoint_id,
                "url": f.endpoint.url,
                "since": f"{f.failing_since:%Y-%m-%d %H:%M}",
                "failures": f.consecutive_failures,
            }
            for f in n.endpoints
        ]
        by_contact = defaultdict(list)
        for f, line in zip(n.endpoints, lines, strict=True):
            if f.endpoint.contact_email:
                by_contact[f.endpoint.contact_email].append(line)
        messages = list(by_contact.items()) + [(address, lines) for address in staff_emails()]
        for address, rows in messages:
            text = _("These webhook endpoints are failing; deliveries to them are waiting:")
            self._send(
                _("[webhookhub] Failing webhook endpoints"),
                text + "\n\n" + "\n".join(rows),
                [address],
            )


# --- Slack-compatible incoming webhook ---------------------------------------------------

SLACK_TIMEOUT_SECONDS = 3.0


class SlackNotifier:
    """Posts `{"text": …}` to `WEBHOOKHUB_SLACK_WEBHOOK_URL` (Slack, Mattermost, Rocket.Chat
    and others take this body) through the deliveries' SSRF-safe transport, with a short
    timeout. Sends nothing while the URL is empty. Wants the signals about endpoints and
    dead deliveries, not every event and attempt (subclass and set `signals` for more)."""

    signals = (
        "delivery_dead",
        "endpoint_disabled",
        "endpoint_enabled",
        "circuit_opened",
        "circuit_closed",
        "endpoint_failing",
    )

    def __call__(self, notification) -> None:
        url = settings.WEBHOOKHUB_SLACK_WEBHOOK_URL
        text = self.text(notification)
        if not url or not text:
            return
        from deliveries import transport

        result = transport.send(
            transport.OutboundRequest(
                url=url,
                body=json.dumps({"text": text}).encode(),
                headers={"Content-Type": "application/json"},
                timeout=SLACK_TIMEOUT_SECONDS,
                connect_timeout=SLACK_TIMEOUT_SECONDS,
                allow_private=settings.WEBHOOKHUB_ALLOW_PRIVATE_URLS,
            )
        )
        if not result.succeeded:
            raise RuntimeError(f"Slack webhook answered {result.error_message}")

    def text(self, n) -> str:
        """The message for a notification ("" for none)."""
        if isinstance(n, DeliveryOutcome):
            return _(
                "Delivery %(delivery)s of %(event)s (%(type)s) to %(endpoint)s (%(partner)s) "
                "is dead after %(attempts)s attempts: %(error)s"
            ) % {
                "delivery": n.delivery_id,
                "event": n.event_id,
                "type": n.event_type,
                "endpoint": n.endpoint.name,
                "partner": n.endpoint.partner_name,
                "attempts": n.attempt,
                "error": n.error,
            }
        if isinstance(n, EndpointSwitched):
            values = {"endpoint": n.endpoint.name, "partner": n.endpoint.partner_name}
            if n.enabled:
                return _("Endpoint %(endpoint)s (%(partner)s) was switched on by %(by)s") % {
                    **values,
                    "by": n.by,
                }
            return _("Endpoint %(endpoint)s (%(partner)s) was switched off: %(reason)s") % {
                **values,
                "reason": n.reason,
            }
        if isinstance(n, CircuitChanged):
            values = {"endpoint": n.endpoint.name, "partner": n.endpoint.partner_name}
            if n.opened:
                return _(
                    "Circuit opened for %(endpoint)s (%(partner)s) after %(failures)s "
                    "failures in a row"
                ) % {**values, "failures": n.consecutive_failures}
            return _("Circuit closed for %(endpoint)s (%(partner)s): delivering again") % values
        if isinstance(n, EndpointFailing):
            return _(
                "Endpoint %(endpoint)s (%(partner)s) has been failing since %(since)s "
                "(%(stage)s %% of the window); it will be switched off at %(disable_at)s. "
                "Last error: %(error)s"
            ) % {
                "endpoint": n.endpoint.name,
                "partner": n.endpoint.partner_name,
                "since": _when(n.failing_since),
                "stage": n.stage,
                "disable_at": _when(n.disable_at),
                "error": n.last_error,
            }
        if isinstance(n, EventPublished):
            return _("Event %(event)s (%(type)s) published") % {
                "event": n.event_id,
                "type": n.event_type,
            }
        return ""
