"""`verify()`: check a webhook webhookhub sent you, per Standard Webhooks.

https://www.standardwebhooks.com/ — the signed content is `{webhook-id}.{webhook-timestamp}.`
followed by the raw body bytes. Each `webhook-signature` entry is either `v1,` + base64 of
its HMAC-SHA256 under the endpoint's secret (`whsec_` + base64), or `v1a,` + base64 of
its ed25519 signature, checked with the endpoint's public key (`whpk_` + base64 of the
32-byte key). During a rotation the header holds several entries, space-separated: any
one of them may match.

Checking `v1a` needs the `cryptography` package (`pip install "webhookhub-client[ed25519]"`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from webhookhub_client.errors import InvalidSignature

SECRET_PREFIX = "whsec_"
PUBLIC_KEY_PREFIX = "whpk_"
SECRET_KEY_PREFIX = "whsk_"
ED25519_KEY_BYTES = 32
DEFAULT_TOLERANCE_SECONDS = 300  # the spec's recommendation: five minutes either way


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secret_or_public_key: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> dict[str, Any]:
    """The webhook's JSON if it is authentic; else `InvalidSignature`.

    `body` is the request body exactly as received (bytes, or the same text): verify
    before parsing, never a re-serialisation. `headers` is any mapping of the request's
    headers (names in any case). `secret_or_public_key` is the endpoint's signing secret
    (`whsec_…`: the `v1` signatures are checked) or its public key (`whpk_…`: the `v1a`
    signatures are checked). Authentic means: `webhook-id`, `webhook-timestamp` and
    `webhook-signature` are present, the timestamp is within `tolerance` seconds of now
    (refusing replays of old requests), and a signature of the key's kind matches
    (HMACs compared in constant time). Entries of the other kind are skipped.

    Raises ValueError for a secret that is not `whsec_` + base64, or a public key that
    is not `whpk_` + base64 of 32 bytes.
    """
    check = _checker(secret_or_public_key)
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
    if not check(f"{msg_id}.{timestamp}.".encode() + raw, signatures):
        raise InvalidSignature("No signature matches.")
    payload = json.loads(raw)
    if not isinstance(payload, dict):
        raise ValueError("The webhook body is not a JSON object.")
    return payload


def _checker(secret_or_public_key: str) -> Callable[[bytes, str], bool]:
    """`check(signed_content, signature_header)` for this secret or public key."""
    if isinstance(secret_or_public_key, str):
        given = secret_or_public_key.strip()
        if given.startswith(PUBLIC_KEY_PREFIX):
            return _ed25519_checker(given)
        if given.startswith(SECRET_KEY_PREFIX):
            raise ValueError(
                "A whsk_ key is webhookhub's own signing key and is never needed to verify: "
                "use the endpoint's public key (whpk_…)."
            )
    key = _key(secret_or_public_key)

    def check(content: bytes, header: str) -> bool:
        expected = hmac.new(key, content, hashlib.sha256).digest()
        return any(hmac.compare_digest(expected, sig) for sig in _signatures(header, "v1"))

    return check


def _ed25519_checker(public_key: str) -> Callable[[bytes, str], bool]:
    try:
        from cryptography.exceptions import InvalidSignature as BadSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:  # pragma: no cover - depends on what is installed
        raise ImportError(
            "Checking v1a (ed25519) signatures needs the cryptography package: "
            'pip install "webhookhub-client[ed25519]"'
        ) from None
    encoded = public_key.removeprefix(PUBLIC_KEY_PREFIX)
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("The public key is not valid base64 after 'whpk_'.") from None
    if len(raw) != ED25519_KEY_BYTES:
        raise ValueError(
            f"The public key must decode to {ED25519_KEY_BYTES} bytes, got {len(raw)}."
        )
    key = Ed25519PublicKey.from_public_bytes(raw)

    def check(content: bytes, header: str) -> bool:
        for signature in _signatures(header, "v1a"):
            try:
                key.verify(signature, content)
            except BadSignature:
                continue
            return True
        return False

    return check


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


def _signatures(header: str, version_wanted: str) -> list[bytes]:
    """The decoded entries of one version (`v1` or `v1a`) of a `webhook-signature`
    header (others are skipped)."""
    found = []
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        if version != version_wanted or not encoded:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found
