"""`verify()`: check a webhook webhookhub sent you, per Standard Webhooks.

https://www.standardwebhooks.com/ — the signed content is `{webhook-id}.{webhook-timestamp}.`
followed by the raw body bytes; each `webhook-signature` entry is `v1,` + base64 of its
HMAC-SHA256 under the secret's key (`whsec_` + base64). During a secret rotation the
header holds several entries, space-separated: any one of them may match.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from webhookhub_client.errors import InvalidSignature

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 300  # the spec's recommendation: five minutes either way


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> dict[str, Any]:
    """The webhook's JSON if it is authentic; else `InvalidSignature`.

    `body` is the request body exactly as received (bytes, or the same text): verify
    before parsing, never a re-serialisation. `headers` is any mapping of the request's
    headers (names in any case). `secret` is the endpoint's signing secret
    (`whsec_…`). Authentic means: `webhook-id`, `webhook-timestamp` and
    `webhook-signature` are present, the timestamp is within `tolerance` seconds of now
    (refusing replays of old requests), and a `v1` signature matches (compared in
    constant time). Entries of other versions (`v1a`, …) are skipped.

    Raises ValueError for a secret that is not `whsec_` + base64.
    """
    key = _key(secret)
    lowered = {str(name).lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        raise InvalidSignature("Missing webhook-id, webhook-timestamp or webhook-signature header.")
    timestamp = timestamp.strip()
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise InvalidSignature("webhook-timestamp is not a whole number of seconds.")
    age = time.time() - int(timestamp)
    if age > tolerance:
        raise InvalidSignature("The message timestamp is too old.")
    if age < -tolerance:
        raise InvalidSignature("The message timestamp is too new.")

    raw = body.encode() if isinstance(body, str) else bytes(body)
    expected = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + raw, hashlib.sha256).digest()
    if not any(hmac.compare_digest(expected, given) for given in _v1_signatures(signatures)):
        raise InvalidSignature("No signature matches.")
    payload = json.loads(raw)
    if not isinstance(payload, dict):
        raise ValueError("The webhook body is not a JSON object.")
    return payload


def _key(secret: str) -> bytes:
    if not isinstance(secret, str):
        raise ValueError("The secret must be a string, whsec_…")
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("The secret is not valid base64 after 'whsec_'.") from None
    if not key:
        raise ValueError("The secret is empty.")
    return key


def _v1_signatures(header: str) -> list[bytes]:
    """The decoded `v1` entries of a `webhook-signature` header (others are skipped)."""
    found = []
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found
