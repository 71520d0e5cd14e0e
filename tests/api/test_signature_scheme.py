"""`signature_scheme` on the endpoint resource, `…/public-key/` and `…/rotate-key/`; and
a delivery to an ed25519 endpoint, through a real receiver and the real engine, verified
with the public key the API gave."""

import base64
from datetime import datetime, timedelta

import pytest
import time_machine
from cryptography.exceptions import InvalidSignature as BadSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.utils import timezone
from standardwebhooks.webhooks import Webhook
from webhookhub_client import InvalidSignature, verify

from audit.models import Action, AuditEntry
from endpoints.models import Endpoint
from events.services import publish
from tests.factories import make_endpoint
from tests.queue import run_queue

pytestmark = pytest.mark.django_db


def url(endpoint, action=""):
    return f"/api/v1/endpoints/{endpoint.public_id}/" + (f"{action}/" if action else "")


def v1a_entries(header: str) -> list[bytes]:
    return [base64.b64decode(e[4:]) for e in header.split() if e.startswith("v1a,")]


def verified_by(public_key: str, request) -> bool:
    """Independently of our code: cryptography's ed25519 over the spec's content."""
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key[5:]))
    content = (
        f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode()
        + request.body
    )
    for signature in v1a_entries(request.headers["webhook-signature"]):
        try:
            key.verify(signature, content)
        except BadSignature:
            continue
        return True
    return False


def test_scheme_is_hmac_by_default_and_set_on_create(partner, partner_api, event_types):
    plain = partner_api.post(
        "/api/v1/endpoints/", {"name": "a", "url": "https://a.example.com/"}, format="json"
    ).json()
    assert plain["signature_scheme"] == "hmac" and plain["secret"].startswith("whsec_")
    created = partner_api.post(
        "/api/v1/endpoints/",
        {"name": "b", "url": "https://b.example.com/", "signature_scheme": "ed25519"},
        format="json",
    )
    assert created.status_code == 201 and created.json()["signature_scheme"] == "ed25519"
    endpoint = Endpoint.objects.get(public_id=created.json()["id"])
    assert endpoint.signature_scheme == "ed25519"
    assert "whsk_" not in created.content.decode()


def test_patch_switches_the_scheme(partner, partner_api, event_types):
    endpoint = make_endpoint(partner)
    changed = partner_api.patch(url(endpoint), {"signature_scheme": "both"}, format="json")
    assert changed.status_code == 200 and changed.json()["signature_scheme"] == "both"
    assert partner_api.get(url(endpoint)).json()["signature_scheme"] == "both"
    assert Endpoint.objects.get(pk=endpoint.pk).signature_scheme == "both"
    entry = AuditEntry.objects.filter(action=Action.ENDPOINT_UPDATED).latest("id")
    assert entry.details["changed"] == ["signature_scheme"]


@pytest.mark.parametrize("bad", ["rsa", "HMAC", "", 1, None, ["both"]])
def test_an_unknown_scheme_is_a_400_naming_the_field_and_changes_nothing(
    partner, partner_api, event_types, bad
):
    endpoint = make_endpoint(partner)
    before = Endpoint.objects.get(pk=endpoint.pk)
    response = partner_api.patch(
        url(endpoint), {"signature_scheme": bad, "name": "renamed"}, format="json"
    )
    assert response.status_code == 400, response.content
    (message,) = response.json()["errors"]["signature_scheme"]
    if isinstance(bad, str) and bad:
        assert message == f'"{bad}" is not a signature scheme: use hmac, ed25519 or both.'
    after = Endpoint.objects.get(pk=endpoint.pk)
    assert (after.name, after.signature_scheme, after.updated_at) == (
        before.name, "hmac", before.updated_at,
    )  # fmt: skip
    created = partner_api.post(
        "/api/v1/endpoints/",
        {"name": "n", "url": "https://n.example.com/", "signature_scheme": bad},
        format="json",
    )
    assert created.status_code == 400 and "signature_scheme" in created.json()["errors"]
    assert Endpoint.objects.count() == 1


def test_public_key_shows_the_current_and_the_rotated_out_keys(partner, partner_api, event_types):
    endpoint = make_endpoint(partner, signature_scheme="ed25519")
    shown = partner_api.get(url(endpoint, "public-key"))
    assert shown.status_code == 200
    assert shown.json() == {
        "scheme": "ed25519",
        "public_key": endpoint.public_key,
        "previous_public_keys": [],
    }
    assert "whsk_" not in shown.content.decode() and "whsec_" not in shown.content.decode()

    rotated = partner_api.post(url(endpoint, "rotate-key"), {"grace_seconds": 3600}, format="json")
    assert rotated.status_code == 200
    new_key = rotated.json()["public_key"]
    assert new_key.startswith("whpk_") and new_key != endpoint.public_key
    expires = datetime.fromisoformat(rotated.json()["previous_public_key_expires_at"])
    assert timedelta(minutes=59) < expires - timezone.now() <= timedelta(hours=1)
    after = partner_api.get(url(endpoint, "public-key")).json()
    assert after["public_key"] == new_key
    assert [k["public_key"] for k in after["previous_public_keys"]] == [endpoint.public_key]
    assert datetime.fromisoformat(after["previous_public_keys"][0]["expires_at"]) == expires
    assert AuditEntry.objects.get(action=Action.KEY_ROTATED).actor.startswith("api:")
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        assert partner_api.get(url(endpoint, "public-key")).json()["previous_public_keys"] == []


def test_rotate_key_grace_is_bounded_and_strict(partner, partner_api, event_types):
    endpoint = make_endpoint(partner)
    for body in ({"grace_seconds": 8 * 86400}, {"grace_seconds": "60"}, {"grace": 60}):
        response = partner_api.post(url(endpoint, "rotate-key"), body, format="json")
        assert response.status_code == 400, body
    assert Endpoint.objects.get(pk=endpoint.pk).public_key == endpoint.public_key
    now = partner_api.post(url(endpoint, "rotate-key"), {"grace_seconds": 0}, format="json")
    assert now.json()["previous_public_key_expires_at"] is None


def test_another_partners_endpoint_is_a_404(partner, other_partner, other_api, event_types):
    endpoint = make_endpoint(partner)
    assert other_api.get(url(endpoint, "public-key")).status_code == 404
    assert other_api.post(url(endpoint, "rotate-key"), {}, format="json").status_code == 404
    patched = other_api.patch(url(endpoint), {"signature_scheme": "both"}, format="json")
    assert patched.status_code == 404
    after = Endpoint.objects.get(pk=endpoint.pk)
    assert (after.public_key, after.signature_scheme) == (endpoint.public_key, "hmac")


@pytest.mark.django_db(transaction=True)
def test_a_delivery_to_an_ed25519_endpoint_verifies_with_the_public_key_from_the_api(
    partner, partner_api, event_types, receiver
):
    endpoint = make_endpoint(partner, url=receiver.url_for("/hook"))
    partner_api.patch(url(endpoint), {"signature_scheme": "ed25519"}, format="json")
    public_key = partner_api.get(url(endpoint, "public-key")).json()["public_key"]

    event = publish("order.paid", {"order": {"id": 7, "note": "Zoë ✓"}}, partner=partner)
    assert run_queue() == 1
    (request,) = receiver.wait_for(1)
    header = request.headers["webhook-signature"]
    assert header.startswith("v1a,") and " " not in header, "ed25519 alone: no v1"
    assert request.headers["webhook-id"] == event.public_id
    assert verified_by(public_key, request)
    assert verify(request.body, request.headers, public_key)["data"]["order"]["id"] == 7
    with pytest.raises(InvalidSignature):
        verify(request.body, request.headers, endpoint.signing_secret)
    with pytest.raises(InvalidSignature):
        verify(request.body + b" ", request.headers, public_key)

    # `both`: the HMAC still verifies with the standardwebhooks library, beside v1a.
    partner_api.patch(url(endpoint), {"signature_scheme": "both"}, format="json")
    publish("order.paid", {"n": 2}, partner=partner)
    run_queue()
    _, both = receiver.wait_for(2)
    v1, v1a = both.headers["webhook-signature"].split(" ")
    assert v1.startswith("v1,") and v1a.startswith("v1a,")
    Webhook(endpoint.signing_secret).verify(both.body, dict(both.headers))
    assert verified_by(public_key, both)


@pytest.mark.django_db(transaction=True)
def test_after_a_key_rotation_old_and_new_public_keys_verify_until_the_grace_ends(
    partner, partner_api, event_types, receiver
):
    endpoint = make_endpoint(partner, url=receiver.url_for("/hook"), signature_scheme="ed25519")
    old_key = endpoint.public_key
    rotated = partner_api.post(url(endpoint, "rotate-key"), {"grace_seconds": 600}, format="json")
    new_key = rotated.json()["public_key"]

    publish("order.paid", {"n": 1}, partner=partner)
    run_queue()
    (during,) = receiver.wait_for(1)
    assert len(v1a_entries(during.headers["webhook-signature"])) == 2
    assert verify(during.body, during.headers, old_key) and verified_by(old_key, during)
    assert verify(during.body, during.headers, new_key) and verified_by(new_key, during)

    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        publish("order.paid", {"n": 2}, partner=partner)
        run_queue()
        _, after = receiver.wait_for(2)
        assert len(v1a_entries(after.headers["webhook-signature"])) == 1
        assert verify(after.body, after.headers, new_key) and verified_by(new_key, after)
        assert not verified_by(old_key, after)
        with pytest.raises(InvalidSignature, match="No signature matches"):
            verify(after.body, after.headers, old_key)
