"""Endpoint verification: proof that whoever runs the URL wants our webhooks.

With `WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION` on, a new endpoint (or a new URL) is
sent a random challenge (the deliveries app sends it, hearing `verification_needed`)
and its deliveries are held until it answers 2xx with `{"challenge": "<value>"}` or
the partner pastes the value it received. Only the challenge's SHA-256 is kept; it is
compared in constant time and used once. What is held and sent is the deliveries
app's (`endpoint_verified`): this module writes endpoint rows only.
"""

import hashlib
import hmac
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import Action
from audit.services import audit_record
from endpoints.models import Endpoint
from endpoints.signals import endpoint_verified

MAX_CHALLENGE_LENGTH = 200


def when(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def verification_required() -> bool:
    return settings.WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION


def challenge_hash(challenge: str) -> str:
    return hashlib.sha256(challenge.encode("utf-8", "surrogatepass")).hexdigest()


def challenge_matches(endpoint: Endpoint, challenge) -> bool:
    """Whether `challenge` is the endpoint's outstanding challenge (constant time)."""
    if not isinstance(challenge, str) or not endpoint.verification_challenge_hash:
        return False
    if not challenge or len(challenge) > MAX_CHALLENGE_LENGTH:
        return False
    return hmac.compare_digest(challenge_hash(challenge), endpoint.verification_challenge_hash)


@transaction.atomic
def endpoint_challenge_new(endpoint: Endpoint, *, by: str, reason: str = "") -> str:
    """A new challenge for `endpoint`: it is unverified from now until it is answered
    (its deliveries are held while verification is required). Returns the challenge,
    which is not stored: send it, then forget it."""
    challenge = "whch_" + secrets.token_urlsafe(24)
    now = timezone.now()
    endpoint.verified_at = None
    endpoint.verification_sent_at = now
    endpoint.verification_challenge_hash = challenge_hash(challenge)
    Endpoint.objects.filter(pk=endpoint.pk).update(
        verified_at=None,
        verification_sent_at=now,
        verification_challenge_hash=endpoint.verification_challenge_hash,
        updated_at=now,
    )
    audit_record(
        Action.VERIFICATION_SENT, endpoint, by=by, reason=reason, details={"url": endpoint.url}
    )
    return challenge


def endpoint_verify(endpoint: Endpoint, *, challenge, by: str, how: str = "pasted") -> Endpoint:
    """Mark `endpoint` verified if `challenge` is its outstanding challenge; the held
    deliveries then go (`endpoint_verified`). A wrong or used challenge is a
    ValidationError on `challenge` and writes nothing. `how`: "pasted" or "answered"."""
    with transaction.atomic():
        locked = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        if not challenge_matches(locked, challenge):
            if locked.verified_at is not None and not locked.verification_challenge_hash:
                message = _("This endpoint is already verified; there is no challenge to answer.")
            else:
                message = _(
                    "That is not the endpoint's current challenge. Paste the value of "
                    "“challenge” from the latest webhookhub.endpoint.verification request."
                )
            raise ValidationError({"challenge": ValidationError(message, code="wrong_challenge")})
        now = timezone.now()
        Endpoint.objects.filter(pk=locked.pk).update(
            verified_at=now, verification_challenge_hash="", updated_at=now
        )
        endpoint.verified_at, endpoint.verification_challenge_hash = now, ""
        endpoint.verification_sent_at = locked.verification_sent_at
        audit_record(Action.VERIFIED, endpoint, by=by, details={"how": how})
        endpoint_verified.send(sender=Endpoint, endpoint=endpoint, by=by)
    return endpoint


def verification_status(endpoint: Endpoint) -> tuple[str, str]:
    """(code, sentence): "verified" (at …), "awaiting" (since …, held or not) or
    "unverified" (never sent a challenge: older than verification)."""
    if endpoint.verified_at is not None:
        return "verified", _("Verified at %(when)s.") % {"when": when(endpoint.verified_at)}
    if endpoint.verification_sent_at is not None:
        text = _("Awaiting verification since %(when)s.") % {
            "when": when(endpoint.verification_sent_at)
        }
        if not verification_required():
            text += " " + _("Deliveries are not held: verification is not required.")
        return "awaiting", text
    return "unverified", _("Not verified: no challenge was sent (verification was off).")
