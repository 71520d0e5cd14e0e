"""Endpoint verification, the deliveries side: sending the challenge and reading the
answer (the endpoint's state is `endpoints.verification`'s).

The challenge is a `webhookhub.endpoint.verification` event to that one endpoint,
signed like every delivery and sent like a test: past the switch, the circuit, the cap,
the rate limit and the verification hold itself, once, never retried. Its payload is
`{"challenge", "endpoint_id", "url"}`. The endpoint is verified when that request is
answered 2xx with the JSON object `{"challenge": "<the value>"}`; a 2xx without it is
a failed attempt that says why. Partners never read the challenge back from webhookhub
(only from the request they received): the event's stored payload — what the portal and
the API show — has it masked, and an answer that echoes it is stored with it masked.
(The exact bytes, `body`, keep it: they are what was signed and sent.)
"""

import json
import logging
from collections.abc import Sequence
from dataclasses import replace

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from deliveries.models import VERIFICATION_EVENT_TYPE, Delivery, Trigger
from deliveries.transport import ErrorKind
from endpoints.models import Endpoint
from endpoints.verification import endpoint_challenge_new, endpoint_verify
from events.models import Event
from events.services import event_publish

logger = logging.getLogger("deliveries.engine")

MASK = "••••"
ANSWERED_BY = "system"


def endpoint_verification_send(endpoint: Endpoint, *, by: str, reason: str = "") -> Delivery:
    """Send `endpoint` a new challenge ("verify again", creation, URL change): it is
    unverified until that challenge is answered. Returns the challenge's delivery,
    queued for the workers. Raises `Endpoint.DoesNotExist` if it was deleted meanwhile."""
    with transaction.atomic():
        # Locked, as a test's: a concurrent DELETE finishes first or waits for us.
        locked = Endpoint.objects.select_for_update().select_related("partner").get(pk=endpoint.pk)
        challenge = endpoint_challenge_new(endpoint, by=by, reason=reason)
        data = {"challenge": challenge, "endpoint_id": locked.public_id, "url": locked.url}
        event, _created = event_publish(
            VERIFICATION_EVENT_TYPE,
            data,
            partner=locked.partner,
            source="webhookhub",
            endpoint_ids=[locked.pk],
            trigger=Trigger.TEST,
            trigger_by=by,
        )
        # The bytes sent (`body`) carry it; what webhookhub shows (`payload`) does not.
        Event.objects.filter(pk=event.pk).update(payload={**data, "challenge": MASK})
        return event.deliveries.select_related("event", "endpoint").get()


def _sent_challenge(delivery: Delivery) -> str | None:
    """The challenge a claimed delivery carries, if it is a verification challenge."""
    if delivery.next_trigger != Trigger.TEST:
        return None
    envelope = json.loads(delivery.event.body)
    if envelope.get("type") != VERIFICATION_EVENT_TYPE:
        return None
    return envelope["data"].get("challenge")


def _answered(body: str) -> object:
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    return answer.get("challenge") if isinstance(answer, dict) else None


def answers_judge(outcomes: Sequence) -> None:
    """Set the verification outcomes as they are to be recorded: a request answered 2xx
    without its challenge becomes a failure saying so, and an answer that repeats the
    challenge is kept with it masked. Marks each of them with its `challenge`."""
    for outcome in outcomes:
        challenge = _sent_challenge(outcome.delivery)
        result = outcome.result
        if challenge is None or result is None:
            continue
        if result.succeeded and _answered(result.body) != challenge:
            if _answered(result.body) is None:
                why = _('answered %(code)s without {"challenge": …} in a JSON body')
            else:
                why = _("answered %(code)s with another challenge")
            result = replace(
                result,
                error_kind=ErrorKind.CHALLENGE_NOT_ANSWERED,
                error_message=(why % {"code": result.status_code})[:500],
            )
        outcome.result = replace(result, body=result.body.replace(challenge, MASK))
        outcome.challenge = challenge


def answers_apply(outcomes: Sequence) -> None:
    """After the attempts are committed: the endpoints that answered their challenge
    are verified (their held deliveries go). An answer to a challenge that has been
    replaced since (a newer URL, "verify again") verifies nothing."""
    for outcome in outcomes:
        challenge = getattr(outcome, "challenge", None)
        if challenge is None or not outcome.result.succeeded:
            continue
        try:
            endpoint_verify(outcome.delivery.endpoint, challenge=challenge, by=ANSWERED_BY,
                            how="answered")  # fmt: skip
        except (ValidationError, Endpoint.DoesNotExist):  # a newer challenge; deleted
            logger.info(
                "verification answer not applied",
                extra={"delivery_id": outcome.delivery.public_id},
            )
