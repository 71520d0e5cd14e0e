"""Asymmetric signatures (Standard Webhooks `v1a`, ed25519), checked by an independent
implementation: cryptography's Ed25519PublicKey.verify over the spec's signed content
`{msg_id}.{timestamp}.{body}`, written out here — not our signing code."""

import base64
import time

import pytest
import standardwebhooks.webhooks
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from deliveries.signing import (
    generate_key_pair,
    generate_secret,
    public_key_for,
    sign,
    sign_ed25519,
    signature_header,
    webhook_headers,
)

# RFC 8032, section 7.1, TEST 1: the secret key and the public key it must give.
RFC_SECRET_KEY = (
    "whsk_"
    + base64.b64encode(
        bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    ).decode()
)
RFC_PUBLIC_KEY = (
    "whpk_"
    + base64.b64encode(
        bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    ).decode()
)
BODY = '{"id":"evt_1","type":"order.paid","data":{"name":"Zoë ✓"}}'.encode()


def independently_verified(public_key: str, entry: str, msg_id: str, timestamp, body) -> bool:
    """The receiver's side, from the spec alone."""
    version, _, encoded = entry.partition(",")
    assert version == "v1a"
    raw_key = base64.b64decode(public_key.removeprefix("whpk_"))
    content = f"{msg_id}.{timestamp}.".encode() + body
    try:
        Ed25519PublicKey.from_public_bytes(raw_key).verify(base64.b64decode(encoded), content)
    except InvalidSignature:
        return False
    return True


def test_keys_are_prefixed_base64_of_the_raw_32_bytes():
    secret_key, public_key = generate_key_pair()
    assert secret_key.startswith("whsk_") and public_key.startswith("whpk_")
    assert len(base64.b64decode(secret_key[5:], validate=True)) == 32
    assert len(base64.b64decode(public_key[5:], validate=True)) == 32
    assert public_key_for(secret_key) == public_key
    assert generate_key_pair() != (secret_key, public_key)


def test_the_public_key_of_the_rfc_8032_test_key_is_the_rfcs():
    assert public_key_for(RFC_SECRET_KEY) == RFC_PUBLIC_KEY


def test_v1a_signature_verifies_with_cryptography_over_the_spec_content():
    secret_key, public_key = generate_key_pair()
    entry = sign_ed25519(secret_key, "msg_1", 1614265330, BODY)
    assert entry.startswith("v1a,") and len(base64.b64decode(entry[4:])) == 64
    assert independently_verified(public_key, entry, "msg_1", 1614265330, BODY)
    # ed25519 is deterministic: the same message gives the same signature.
    assert sign_ed25519(secret_key, "msg_1", 1614265330, BODY) == entry


@pytest.mark.parametrize(
    ("msg_id", "timestamp", "body"),
    [
        ("msg_2", 1614265330, BODY),
        ("msg_1", 1614265331, BODY),
        ("msg_1", 1614265330, BODY.replace(b"order.paid", b"order.refunded")),
    ],
)
def test_a_v1a_signature_covers_id_timestamp_and_body(msg_id, timestamp, body):
    secret_key, public_key = generate_key_pair()
    entry = sign_ed25519(secret_key, "msg_1", 1614265330, BODY)
    assert not independently_verified(public_key, entry, msg_id, timestamp, body)


def test_another_public_key_does_not_verify():
    secret_key, _ = generate_key_pair()
    _, other_public = generate_key_pair()
    entry = sign_ed25519(secret_key, "msg_1", 1614265330, BODY)
    assert not independently_verified(other_public, entry, "msg_1", 1614265330, BODY)


def test_both_schemes_carry_v1_then_v1a_and_the_hmac_still_verifies_with_standardwebhooks():
    secret, (secret_key, public_key) = generate_secret(), generate_key_pair()
    now = int(time.time())
    headers = webhook_headers(
        msg_id="msg_3", timestamp=now, body=BODY, secrets=[secret], secret_keys=[secret_key]
    )
    v1, v1a = headers["webhook-signature"].split(" ")
    assert v1 == sign(secret, "msg_3", now, BODY) and v1.startswith("v1,")
    assert independently_verified(public_key, v1a, "msg_3", now, BODY)
    standardwebhooks.webhooks.Webhook(secret).verify(BODY, headers)


def test_ed25519_alone_carries_only_v1a():
    secret_key, public_key = generate_key_pair()
    header = signature_header([], "msg_4", 1614265330, BODY, secret_keys=[secret_key])
    assert header.startswith("v1a,") and " " not in header
    assert independently_verified(public_key, header, "msg_4", 1614265330, BODY)


def test_during_a_key_rotation_each_public_key_verifies_its_own_entry():
    (old_sk, old_pk), (new_sk, new_pk) = generate_key_pair(), generate_key_pair()
    header = signature_header([], "msg_5", 1614265330, BODY, secret_keys=[new_sk, old_sk, new_sk])
    entries = header.split(" ")
    assert len(entries) == 2, "a key listed twice signs once"
    for public_key in (old_pk, new_pk):
        assert any(
            independently_verified(public_key, e, "msg_5", 1614265330, BODY) for e in entries
        )


def test_nothing_to_sign_with_is_an_error():
    with pytest.raises(ValueError, match="secret or secret key"):
        signature_header([], "msg_6", 1614265330, BODY, secret_keys=[])
    with pytest.raises(TypeError):
        signature_header([], "msg_6", 1614265330, BODY, secret_keys="whsk_x")


@pytest.mark.parametrize(
    ("secret_key", "message"),
    [
        (RFC_PUBLIC_KEY, "starts with 'whsk_'"),
        (RFC_SECRET_KEY[5:], "starts with 'whsk_'"),
        ("whsk_not base64!", "not valid base64"),
        ("whsk_" + base64.b64encode(b"x" * 31).decode(), "32 bytes, got 31"),
        (generate_secret(), "starts with 'whsk_'"),
    ],
    # Fixed ids: a generated secret in the id would differ between xdist workers.
    ids=["public key", "no prefix", "not base64", "31 bytes", "a whsec_ secret"],
)
def test_a_malformed_secret_key_is_refused(secret_key, message):
    with pytest.raises(ValueError, match=message):
        sign_ed25519(secret_key, "msg_7", 1614265330, BODY)
