import base64
import json
import re
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
import standardwebhooks.webhooks
import svix.webhooks

from deliveries.signing import (
    encode_envelope,
    generate_secret,
    secret_bytes,
    sign,
    signature_header,
    webhook_headers,
)

# The test vector from the Standard Webhooks specification.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

VERIFIERS = [standardwebhooks.webhooks.Webhook, svix.webhooks.Webhook]
VERIFICATION_ERRORS = (standardwebhooks.webhooks.WebhookVerificationError,)


def test_spec_test_vector():
    assert sign(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    assert signature_header([SPEC_SECRET], SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    assert webhook_headers(
        msg_id=SPEC_MSG_ID, timestamp=SPEC_TIMESTAMP, body=SPEC_BODY, secrets=[SPEC_SECRET]
    ) == {
        "webhook-id": SPEC_MSG_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": SPEC_SIGNATURE,
    }


def test_secret_prefix_is_optional():
    assert sign(SPEC_SECRET.removeprefix("whsec_"), SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY) == (
        SPEC_SIGNATURE
    )


def body_for_now():
    return encode_envelope(
        event_id="evt_1",
        event_type="order.created",
        timestamp=datetime.now(UTC),
        data={"total": "12.50", "name": "Zoë ✓"},  # non-ASCII: bytes, not str, are signed
    )


@pytest.mark.parametrize("verifier", VERIFIERS)
def test_round_trip_through_reference_libraries(verifier):
    secret, body, now = generate_secret(), body_for_now(), int(time.time())
    headers = webhook_headers(msg_id="msg_1", timestamp=now, body=body, secrets=[secret])
    verifier(secret).verify(body, headers)
    # Header names are case-insensitive on the wire.
    verifier(secret).verify(body, {k.title(): v for k, v in headers.items()})


@pytest.mark.parametrize("verifier", VERIFIERS)
def test_rotation_header_verifies_with_each_secret_alone(verifier):
    old, new, body, now = generate_secret(), generate_secret(), body_for_now(), int(time.time())
    headers = webhook_headers(msg_id="msg_2", timestamp=now, body=body, secrets=[old, new])
    signatures = headers["webhook-signature"].split(" ")
    assert signatures == [sign(old, "msg_2", now, body), sign(new, "msg_2", now, body)]
    verifier(old).verify(body, headers)
    verifier(new).verify(body, headers)
    with pytest.raises(VERIFICATION_ERRORS):
        verifier(generate_secret()).verify(body, headers)


@pytest.mark.parametrize("verifier", VERIFIERS)
def test_tampering_fails_verification(verifier):
    secret, body, now = generate_secret(), body_for_now(), int(time.time())
    headers = webhook_headers(msg_id="msg_3", timestamp=now, body=body, secrets=[secret])
    with pytest.raises(VERIFICATION_ERRORS):
        verifier(secret).verify(body.replace(b"12.50", b"99.50"), headers)
    with pytest.raises(VERIFICATION_ERRORS):
        verifier(secret).verify(body, {**headers, "webhook-timestamp": str(now + 1)})
    with pytest.raises(VERIFICATION_ERRORS):
        verifier(secret).verify(body, {**headers, "webhook-id": "msg_other"})


def test_old_timestamp_is_rejected_by_receivers():
    secret, body = generate_secret(), body_for_now()
    stale = int(time.time()) - 3600
    headers = webhook_headers(msg_id="msg_4", timestamp=stale, body=body, secrets=[secret])
    with pytest.raises(VERIFICATION_ERRORS, match="too old"):
        standardwebhooks.webhooks.Webhook(secret).verify(body, headers)


def test_generated_secret_format():
    secrets = {generate_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert re.fullmatch(r"whsec_[A-Za-z0-9+/]+={0,2}", secret)
        assert 24 <= len(base64.b64decode(secret.removeprefix("whsec_"))) <= 32
        assert 24 <= len(secret_bytes(secret)) <= 32


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("", "empty"),
        ("whsec_", "empty"),
        ("whsec_not base64!", "base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24..64 bytes"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "24..64 bytes"),
    ],
)
def test_bad_secrets_raise_clear_errors(bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        secret_bytes(bad)
    with pytest.raises(ValueError, match=re.escape(message)):
        sign(bad, "msg", 1, b"{}")


def test_unpadded_secret_is_accepted():
    key = b"k" * 32
    padded = base64.b64encode(key).decode()
    assert padded.endswith("=")
    assert secret_bytes("whsec_" + padded.rstrip("=")) == key


def test_signing_needs_at_least_one_secret_and_an_int_timestamp():
    with pytest.raises(ValueError, match="At least one"):
        signature_header([], "msg", 1, b"{}")
    with pytest.raises(TypeError):
        signature_header(SPEC_SECRET, "msg", 1, b"{}")  # a str is not a list of secrets
    with pytest.raises(TypeError):
        sign(SPEC_SECRET, "msg", 1614265330.0, b"{}")


def test_envelope_is_compact_ordered_utf8_json():
    body = encode_envelope(
        event_id="evt_1",
        event_type="order.created",
        timestamp=datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        data={"b": 1, "a": ["ü", None]},
    )
    expected = (
        '{"id":"evt_1","type":"order.created","timestamp":"2024-01-02T03:04:05.678Z",'
        '"data":{"b":1,"a":["ü",null]}}'
    )
    assert body == expected.encode()
    assert list(json.loads(body)) == ["id", "type", "timestamp", "data"]


def test_envelope_timestamp_is_converted_to_utc_with_milliseconds():
    cet = timezone(timedelta(hours=1))
    body = encode_envelope(
        event_id="e", event_type="t", timestamp=datetime(2024, 1, 1, 13, 0, tzinfo=cet), data={}
    )
    assert json.loads(body)["timestamp"] == "2024-01-01T12:00:00.000Z"


def test_envelope_refuses_naive_timestamps_and_nan():
    with pytest.raises(ValueError, match="timezone-aware"):
        encode_envelope(event_id="e", event_type="t", timestamp=datetime(2024, 1, 1), data={})
    with pytest.raises(ValueError):
        encode_envelope(
            event_id="e", event_type="t", timestamp=datetime.now(UTC), data=float("nan")
        )


def test_envelope_is_deterministic():
    kwargs = dict(event_id="e", event_type="t", timestamp=datetime.now(UTC), data={"x": [1, 2]})
    assert encode_envelope(**kwargs) == encode_envelope(**kwargs)
