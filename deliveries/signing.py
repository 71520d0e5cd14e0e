"""Standard Webhooks signing (https://www.standardwebhooks.com/).

Pure: no Django, no network. Promises:

* Secrets look like ``whsec_<base64>`` and decode to 24..64 bytes, as the spec asks.
* ``sign`` is ``v1,`` + base64(HMAC-SHA256(key, f"{msg_id}.{timestamp}." + body)), so
  receivers can verify with the ``standardwebhooks`` or ``svix`` libraries.
* During secret rotation every active secret signs; the ``webhook-signature`` header
  carries all the signatures, space-separated, and any one of them verifies.
* An endpoint may sign asymmetrically instead of (or beside) HMAC: ``v1a,`` + base64 of
  the ed25519 signature of the same content, under a ``whsk_`` secret key whose public
  half, ``whpk_``, partners verify with (Standard Webhooks, "asymmetric signatures"). Both
  keys are base64 of their raw 32 bytes, as Svix serialises them.
* ``encode_envelope`` produces the exact bytes that are stored once per event and sent
  unchanged on every attempt (signatures cover bytes, never a re-serialisation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets as _secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # generated secrets: 256-bit keys, the HMAC-SHA256 block-size sweet spot
MIN_SECRET_BYTES = 24  # Standard Webhooks: between 24 and 64 bytes
MAX_SECRET_BYTES = 64
SIGNATURE_VERSION = "v1"
SECRET_KEY_PREFIX = "whsk_"  # ed25519 secret key: only webhookhub holds it
PUBLIC_KEY_PREFIX = "whpk_"  # its public key: what partners verify `v1a` with
ASYMMETRIC_VERSION = "v1a"
ED25519_KEY_BYTES = 32


def generate_secret() -> str:
    """A fresh ``whsec_``-prefixed secret holding 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_bytes(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_...`` secret (the prefix is optional).

    Raises ValueError if the value is not base64 or does not decode to 24..64 bytes.
    """
    if not isinstance(secret, str):
        raise ValueError("Webhook secret must be a string.")
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    if not encoded:
        raise ValueError("Webhook secret is empty.")
    try:
        # Tolerate missing padding, as the reference libraries do.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("Webhook secret is not valid base64 after the 'whsec_' prefix.") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"Webhook secret must decode to {MIN_SECRET_BYTES}..{MAX_SECRET_BYTES} bytes, "
            f"got {len(key)}."
        )
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one message under one secret."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError("timestamp must be an int (seconds since the epoch).")
    to_sign = f"{msg_id}.{timestamp}.".encode() + bytes(body)
    digest = hmac.new(secret_bytes(secret), to_sign, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def _key_bytes(value: str, prefix: str, what: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"An ed25519 {what} must be a string, {prefix}….")
    if not value.strip().startswith(prefix):
        raise ValueError(f"An ed25519 {what} starts with '{prefix}'.")
    encoded = value.strip().removeprefix(prefix)
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"The ed25519 {what} is not valid base64 after '{prefix}'.") from None
    if len(raw) != ED25519_KEY_BYTES:
        raise ValueError(
            f"The ed25519 {what} must decode to {ED25519_KEY_BYTES} bytes, got {len(raw)}."
        )
    return raw


def generate_key_pair() -> tuple[str, str]:
    """A fresh ed25519 key pair: (``whsk_…`` secret key, ``whpk_…`` public key)."""
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    secret_key = SECRET_KEY_PREFIX + base64.b64encode(raw).decode("ascii")
    return secret_key, public_key_for(secret_key)


@lru_cache(maxsize=1024)
def _private_key(secret_key: str) -> Ed25519PrivateKey:
    # Parsed once per key and process: every delivery to the endpoint reuses it.
    return Ed25519PrivateKey.from_private_bytes(
        _key_bytes(secret_key, SECRET_KEY_PREFIX, "secret key")
    )


def public_key_for(secret_key: str) -> str:
    """The ``whpk_…`` public key of a ``whsk_…`` secret key."""
    raw = _private_key(secret_key).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def sign_ed25519(secret_key: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1a,<base64>`` signature of one message under one ed25519 secret key: the
    same signed content as ``v1`` (``{msg_id}.{timestamp}.{body}``)."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError("timestamp must be an int (seconds since the epoch).")
    to_sign = f"{msg_id}.{timestamp}.".encode() + bytes(body)
    signature = _private_key(secret_key).sign(to_sign)
    return f"{ASYMMETRIC_VERSION},{base64.b64encode(signature).decode('ascii')}"


def signature_header(
    secrets: Sequence[str],
    msg_id: str,
    timestamp: int,
    body: bytes,
    *,
    secret_keys: Sequence[str] = (),
) -> str:
    """Space-separated signatures: ``v1`` by every HMAC secret, then ``v1a`` by every
    ed25519 secret key (old and new sign during rotation). Either list may be empty, not
    both."""
    if isinstance(secrets, str) or isinstance(secret_keys, str):
        raise TypeError("secrets and secret_keys must be sequences, not a single string.")
    unique = list(dict.fromkeys(secrets))
    unique_keys = list(dict.fromkeys(secret_keys))
    if not unique and not unique_keys:
        raise ValueError("At least one webhook secret or secret key is needed to sign.")
    return " ".join(
        [sign(secret, msg_id, timestamp, body) for secret in unique]
        + [sign_ed25519(key, msg_id, timestamp, body) for key in unique_keys]
    )


def webhook_headers(
    *,
    msg_id: str,
    timestamp: int,
    body: bytes,
    secrets: Sequence[str],
    secret_keys: Sequence[str] = (),
) -> dict[str, str]:
    """The three Standard Webhooks headers for one message."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            secrets, msg_id, timestamp, body, secret_keys=secret_keys
        ),
    }


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC, always with milliseconds and a ``Z``: ``2024-01-01T12:00:00.123Z``.

    Microseconds are truncated (not rounded) to milliseconds. Naive datetimes are refused.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware.")
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_envelope(*, event_id: str, event_type: str, timestamp: datetime, data: Any) -> bytes:
    """Compact UTF-8 JSON ``{"id","type","timestamp","data"}`` (key order kept).

    ``data`` must be JSON-serialisable; NaN and infinities are refused (not valid JSON).
    """
    envelope = {
        "id": event_id,
        "type": event_type,
        "timestamp": format_timestamp(timestamp),
        "data": data,
    }
    text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")
