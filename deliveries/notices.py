"""What people are told about delivery health: mails and webhookhub's own events.

Apart from the state machine (`deliveries.health`): these run after the state they
report is committed, and a notice that fails is logged, never breaks delivery.
"""

import logging
from collections import defaultdict

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils.translation import gettext as _

from endpoints.models import Endpoint
from events.services import publish

logger = logging.getLogger(__name__)


def staff_emails() -> list[str]:
    return [address for _, address in settings.ADMINS]


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
    subject = _("[webhookhub] Endpoint %(name)s was disabled") % {"name": endpoint.name}
    body = _(
        "The webhook endpoint %(name)s (%(id)s) of %(partner)s was switched off.\n\n"
        "URL: %(url)s\nReason: %(reason)s\n\nIts waiting deliveries are kept and go out "
        "when the endpoint is switched on again.\n"
    ) % {
        "name": endpoint.name,
        "id": endpoint.public_id,
        "partner": endpoint.partner.name,
        "url": endpoint.url,
        "reason": endpoint.disabled_reason,
    }
    transaction.on_commit(
        lambda: send_mail(subject, body, None, recipients, fail_silently=True), robust=True
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


def failing_endpoints_mail(endpoints: list[Endpoint]) -> None:
    """The failure digest: one mail per partner contact listing its failing endpoints,
    one to the staff listing all (sent when the caller's transaction commits)."""
    lines = {
        e.pk: _(
            "- %(partner)s / %(name)s (%(id)s) %(url)s: failing since %(since)s UTC, "
            "%(failures)s failed attempts in a row"
        )
        % {
            "partner": e.partner.name,
            "name": e.name,
            "id": e.public_id,
            "url": e.url,
            "since": f"{e.health.failing_since:%Y-%m-%d %H:%M}",
            "failures": e.health.consecutive_failures,
        }
        for e in endpoints
    }
    by_contact = defaultdict(list)
    for e in endpoints:
        if e.partner.contact_email:
            by_contact[e.partner.contact_email].append(lines[e.pk])
    messages = [(address, rows) for address, rows in by_contact.items()]
    messages += [(address, list(lines.values())) for address in staff_emails()]
    for address, rows in messages:
        text = _("These webhook endpoints are failing; deliveries to them are waiting:") + "\n\n"
        text += "\n".join(rows)
        transaction.on_commit(
            lambda a=address, t=text: send_mail(
                _("[webhookhub] Failing webhook endpoints"), t, None, [a], fail_silently=True
            ),
            robust=True,
        )
