"""The portal's verification page: the state in the list, pasting the challenge the
endpoint received (a wrong one refused on the form, nothing written), and "Send a new
challenge" answered by a real receiver."""

import re

import pytest

from audit.models import Action, AuditEntry
from endpoints.models import Endpoint
from events.services import publish
from tests.factories import make_endpoint
from tests.queue import run_queue
from tests.receiver import Response

pytestmark = pytest.mark.django_db(transaction=True)

BY = "portal:alice@acme.example"


@pytest.fixture
def required(settings):
    settings.WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION = True


@pytest.fixture
def unverified(acme, event_types, receiver, required):
    receiver.default = Response(200, "thanks")  # 2xx, but no challenge in the answer
    endpoint = make_endpoint(acme, name="Acme orders", url=receiver.url_for())
    publish("order.paid", {"n": 1}, partner=acme)
    run_queue()
    (request,) = receiver.wait_for(1)
    return endpoint, request.json()["data"]["challenge"]


def test_list_says_awaiting_and_links_the_verification_page(acme_client, unverified):
    endpoint, _challenge = unverified
    html = acme_client.get("/portal/").content.decode()
    assert "awaiting verification" in html
    assert f'id="verify-{endpoint.public_id}"' in html
    page = acme_client.get(f"/portal/webhooks/{endpoint.public_id}/verification/")
    body = page.content.decode()
    assert "Awaiting verification since" in body and 'id="verification-held"' in body


def test_a_wrong_challenge_is_refused_on_the_form_and_changes_nothing(acme_client, unverified):
    endpoint, _challenge = unverified
    before = Endpoint.objects.values().get(pk=endpoint.pk)
    audit = AuditEntry.objects.count()
    page = acme_client.post(
        f"/portal/webhooks/{endpoint.public_id}/verification/", {"challenge": "whch_nope"}
    )
    assert page.status_code == 400
    errors = re.search(r'id="challenge-errors">(.*?)</div>', page.content.decode(), re.S)
    assert errors and "not the endpoint" in errors.group(1)
    assert Endpoint.objects.values().get(pk=endpoint.pk) == before
    assert AuditEntry.objects.count() == audit


def test_pasting_the_challenge_verifies_and_the_held_webhook_arrives(
    acme_client, unverified, receiver
):
    endpoint, challenge = unverified
    done = acme_client.post(
        f"/portal/webhooks/{endpoint.public_id}/verification/",
        {"challenge": f"  {challenge} "},
        follow=True,
    )
    assert "is verified; its webhooks are sent" in done.content.decode()
    entry = AuditEntry.objects.get(object_id=endpoint.public_id, action=Action.VERIFIED)
    assert entry.actor == BY
    run_queue()
    types = [r.json()["type"] for r in receiver.requests]
    assert types == ["webhookhub.endpoint.verification", "order.paid"]
    page = acme_client.get(f"/portal/webhooks/{endpoint.public_id}/verification/")
    assert "Verified at" in page.content.decode()
    listed = acme_client.get("/portal/").content.decode()
    assert f'id="verify-{endpoint.public_id}"' not in listed
    assert f'id="verification-{endpoint.public_id}"' in listed  # to verify again later


def test_send_a_new_challenge_that_the_receiver_answers(acme_client, unverified, receiver):
    endpoint, first = unverified
    receiver.answer_challenges()
    page = acme_client.post(
        f"/portal/webhooks/{endpoint.public_id}/verification/", {"again": "1"}, follow=True
    )
    assert "A new challenge is on its way" in page.content.decode()
    run_queue()
    second = receiver.requests[1].json()["data"]["challenge"]
    assert second != first
    assert Endpoint.objects.get(pk=endpoint.pk).verified_at is not None
    assert [r.json()["type"] for r in receiver.requests][-1] == "order.paid"


def test_registering_in_the_portal_sends_the_challenge(acme_client, acme, event_types, required):
    from tests.portal.test_screens import register_form

    acme_client.post("/portal/webhooks/new/", register_form("http://127.0.0.1:9/new"))
    endpoint = Endpoint.objects.get(partner=acme, name="order-sync")
    told = acme_client.get("/portal/").content.decode()
    assert "A verification challenge was sent to http://127.0.0.1:9/new" in told
    assert endpoint.awaiting_verification
    sent = AuditEntry.objects.get(object_id=endpoint.public_id, action=Action.VERIFICATION_SENT)
    assert sent.actor == BY


def test_changing_the_url_in_the_portal_sends_a_challenge_renaming_does_not(
    acme_client, acme, event_types, receiver, required
):
    from tests.portal.test_screens import register_form

    receiver.answer_challenges()
    acme_client.post("/portal/webhooks/new/", register_form(receiver.url_for("/a")))
    endpoint = Endpoint.objects.get(partner=acme, name="order-sync")
    assert "A verification challenge was sent" in acme_client.get("/portal/").content.decode()
    run_queue()
    assert Endpoint.objects.get(pk=endpoint.pk).verified_at is not None
    edit = f"/portal/webhooks/{endpoint.public_id}/"
    renamed = acme_client.post(
        edit, register_form(receiver.url_for("/a"), name="renamed", token_action="keep")
    )
    assert renamed.status_code == 302
    assert "A verification challenge was sent" not in acme_client.get("/portal/").content.decode()
    assert Endpoint.objects.get(pk=endpoint.pk).verified_at is not None

    receiver.default = Response(500, "")
    receiver.respond_with(None)
    acme_client.post(
        edit, register_form(receiver.url_for("/b"), name="renamed", token_action="keep")
    )
    assert "A verification challenge was sent to" in acme_client.get("/portal/").content.decode()
    assert Endpoint.objects.get(pk=endpoint.pk).awaiting_verification


def test_without_the_setting_the_list_offers_no_verification(acme_client, acme_endpoint):
    html = acme_client.get("/portal/").content.decode()
    assert f'id="verify-{acme_endpoint.public_id}"' not in html
    assert f'id="verification-{acme_endpoint.public_id}"' not in html
