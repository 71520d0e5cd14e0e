"""webhookhub_client.verify with a `whpk_` public key: `v1a` (ed25519) signatures made by
an independent signer (cryptography, from the spec) and by webhookhub itself; tampering,
stale timestamps and the wrong kind of key refused."""

import base64
import time

import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from webhookhub_client import InvalidSignature, verify

from deliveries.signing import generate_key_pair, generate_secret, webhook_headers

BODY = '{"id":"evt_1","type":"order.paid","timestamp":"2026-12-01T10:00:00.000Z","data":{"n":"Zoë"}}'.encode()
NOW = 1764583200


def independent_pair() -> tuple[Ed25519PrivateKey, str]:
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private, "whpk_" + base64.b64encode(raw).decode()


def signed_by(private: Ed25519PrivateKey, msg_id="msg_1", timestamp=NOW, body=BODY) -> dict:
    """Headers as the spec describes them, signed without any webhookhub code."""
    signature = private.sign(f"{msg_id}.{timestamp}.".encode() + body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1a," + base64.b64encode(signature).decode(),
    }


@pytest.fixture
def at_now():
    with time_machine.travel(NOW, tick=False):
        yield


def test_an_independently_made_v1a_signature_verifies(at_now):
    private, public_key = independent_pair()
    headers = signed_by(private)
    assert verify(BODY, headers, public_key)["data"] == {"n": "Zoë"}
    assert verify(BODY.decode(), {k.upper(): v for k, v in headers.items()}, public_key)
    assert verify(BODY, headers, public_key.rstrip("="))  # padding is optional


@pytest.mark.parametrize(
    "change",
    [
        {"body": BODY.replace(b"order.paid", b"order.refunded")},
        {"webhook-id": "msg_2"},
        {"webhook-timestamp": str(NOW + 1)},
        {"public_key": "other"},
        {"webhook-signature": "v1a,bm90LWEtc2lnbmF0dXJl"},
        {"webhook-signature": "v1a,not base64!"},
    ],
)
def test_tampering_is_refused(at_now, change):
    private, public_key = independent_pair()
    headers = {**signed_by(private), **change}
    body = headers.pop("body", BODY)
    if headers.pop("public_key", None):
        public_key = independent_pair()[1]
    with pytest.raises(InvalidSignature, match="No signature matches"):
        verify(body, headers, public_key)


def test_stale_and_future_timestamps_are_refused():
    private, public_key = independent_pair()
    headers = signed_by(private)
    with time_machine.travel(NOW + 301, tick=False):
        with pytest.raises(InvalidSignature, match="too old"):
            verify(BODY, headers, public_key)
        assert verify(BODY, headers, public_key, tolerance=301)
    with time_machine.travel(NOW - 301, tick=False), pytest.raises(InvalidSignature, match="new"):
        verify(BODY, headers, public_key)


def test_a_public_key_checks_only_v1a_and_a_secret_only_v1():
    secret, (secret_key, public_key) = generate_secret(), generate_key_pair()
    now = int(time.time())
    both = webhook_headers(
        msg_id="evt_1", timestamp=now, body=BODY, secrets=[secret], secret_keys=[secret_key]
    )
    assert verify(BODY, both, public_key)["id"] == "evt_1"
    assert verify(BODY, both, secret)["id"] == "evt_1"
    hmac_only = webhook_headers(msg_id="evt_1", timestamp=now, body=BODY, secrets=[secret])
    with pytest.raises(InvalidSignature, match="No signature matches"):
        verify(BODY, hmac_only, public_key)
    ed25519_only = webhook_headers(
        msg_id="evt_1", timestamp=now, body=BODY, secrets=[], secret_keys=[secret_key]
    )
    with pytest.raises(InvalidSignature, match="No signature matches"):
        verify(BODY, ed25519_only, secret)


def test_during_a_key_rotation_old_and_new_public_keys_verify():
    (old_sk, old_pk), (new_sk, new_pk) = generate_key_pair(), generate_key_pair()
    headers = webhook_headers(
        msg_id="evt_1",
        timestamp=int(time.time()),
        body=BODY,
        secrets=[],
        secret_keys=[new_sk, old_sk],
    )
    assert verify(BODY, headers, old_pk) and verify(BODY, headers, new_pk)
    with pytest.raises(InvalidSignature):
        verify(BODY, headers, generate_key_pair()[1])


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("whpk_not base64!", "not valid base64"),
        ("whpk_" + base64.b64encode(b"k" * 31).decode(), "32 bytes, got 31"),
        (generate_key_pair()[0], "whsk_ key is webhookhub's own signing key"),
    ],
    # Fixed ids: a generated key in the id would differ between xdist workers.
    ids=["not base64", "31 bytes", "a secret key"],
)
def test_a_malformed_public_key_or_a_secret_key_is_a_value_error(key, message):
    with pytest.raises(ValueError, match=message):
        verify(BODY, {"webhook-id": "x"}, key)
