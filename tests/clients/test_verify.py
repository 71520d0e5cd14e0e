"""webhookhub_client.verify: the Standard Webhooks test vector, and signatures made by
the `standardwebhooks` library and by webhookhub itself (deliveries.signing)."""

import time
from datetime import UTC, datetime

import pytest
import time_machine
from requests.structures import CaseInsensitiveDict
from standardwebhooks.webhooks import Webhook
from webhookhub_client import InvalidSignature, verify

from deliveries.signing import encode_envelope, generate_secret, webhook_headers

# The test vector of the Standard Webhooks specification, literally.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_HEADERS = {
    "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "webhook-timestamp": "1614265330",
    "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}
SPEC_BODY = b'{"test": 2432232314}'


@pytest.fixture
def at_spec_time():
    with time_machine.travel(1614265330, tick=False):
        yield


def envelope() -> bytes:
    return encode_envelope(
        event_id="evt_1",
        event_type="order.paid",
        timestamp=datetime.now(UTC),
        data={"total": "12.50", "name": "Zoë ✓"},  # non-ASCII: the bytes are signed
    )


def test_the_spec_test_vector_verifies(at_spec_time):
    assert verify(SPEC_BODY, SPEC_HEADERS, SPEC_SECRET) == {"test": 2432232314}
    assert verify(SPEC_BODY.decode(), SPEC_HEADERS, SPEC_SECRET) == {"test": 2432232314}
    # Header names in any case, from any mapping (a dict, requests', Django's …).
    titled = {name.title(): value for name, value in SPEC_HEADERS.items()}
    assert verify(SPEC_BODY, titled, SPEC_SECRET) == {"test": 2432232314}
    assert verify(SPEC_BODY, CaseInsensitiveDict(SPEC_HEADERS), SPEC_SECRET)
    # The prefix is optional, as in the reference libraries.
    assert verify(SPEC_BODY, SPEC_HEADERS, SPEC_SECRET.removeprefix("whsec_"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": b'{"test": 2432232315}'}, "No signature matches"),
        ({"webhook-id": "msg_other"}, "No signature matches"),
        ({"webhook-timestamp": "1614265331"}, "No signature matches"),
        ({"secret": generate_secret()}, "No signature matches"),
        ({"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE"}, "No signature"),
        ({"webhook-signature": "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}, "No signature"),
        ({"webhook-signature": "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}, "No signature"),
        ({"webhook-signature": ""}, "Missing"),
        ({"webhook-id": None}, "Missing"),
        ({"webhook-timestamp": "1614265330.0"}, "whole number"),
    ],
)
def test_anything_changed_is_an_invalid_signature(at_spec_time, change, message):
    body = change.pop("body", SPEC_BODY)
    secret = change.pop("secret", SPEC_SECRET)
    headers = {
        name: value for name, value in {**SPEC_HEADERS, **change}.items() if value is not None
    }
    with pytest.raises(InvalidSignature, match=message):
        verify(body, headers, secret)


def test_the_timestamp_must_be_within_the_tolerance():
    with time_machine.travel(1614265330 + 301, tick=False):
        with pytest.raises(InvalidSignature, match="too old"):
            verify(SPEC_BODY, SPEC_HEADERS, SPEC_SECRET)
        assert verify(SPEC_BODY, SPEC_HEADERS, SPEC_SECRET, tolerance=301)
    with (
        time_machine.travel(1614265330 - 301, tick=False),
        pytest.raises(InvalidSignature, match="too new"),
    ):
        verify(SPEC_BODY, SPEC_HEADERS, SPEC_SECRET)


def test_a_signature_by_the_standardwebhooks_library_verifies():
    secret, body = generate_secret(), envelope()
    now = datetime.now(UTC)
    signature = Webhook(secret).sign("msg_1", now, body.decode())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    assert verify(body, headers, secret)["data"] == {"total": "12.50", "name": "Zoë ✓"}


def test_webhookhubs_own_signatures_verify_during_a_rotation_with_either_secret():
    old, new, body = generate_secret(), generate_secret(), envelope()
    headers = webhook_headers(
        msg_id="evt_1", timestamp=int(time.time()), body=body, secrets=[old, new]
    )
    # Another scheme's entry beside them (e.g. an asymmetric `v1a`) is skipped.
    headers["webhook-signature"] = "v1a,bm90LWEtc2lnbmF0dXJl " + headers["webhook-signature"]
    assert verify(body, headers, old)["id"] == "evt_1"
    assert verify(body, headers, new)["type"] == "order.paid"
    with pytest.raises(InvalidSignature):
        verify(body, headers, generate_secret())


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not base64!"])
def test_a_secret_that_is_not_whsec_base64_is_a_value_error(secret):
    with pytest.raises(ValueError, match="secret"):
        verify(SPEC_BODY, SPEC_HEADERS, secret)
