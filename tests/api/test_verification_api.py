"""`POST /api/v1/endpoints/{id}/verify/` and `…/verification/`, and what the endpoint
resource says of verification; the challenge answered by a real receiver."""

import pytest

from audit.models import Action, AuditEntry
from deliveries.models import Delivery
from endpoints.models import Endpoint
from events.services import publish
from tests.factories import make_endpoint
from tests.queue import run_queue
from tests.receiver import Response

pytestmark = pytest.mark.django_db(transaction=True)

VERIFICATION = "webhookhub.endpoint.verification"


@pytest.fixture
def required(settings):
    settings.WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION = True


def verified_entries(endpoint) -> int:
    return AuditEntry.objects.filter(object_id=endpoint.public_id, action=Action.VERIFIED).count()


def test_created_through_the_api_it_is_awaiting_then_verified_by_its_answer(
    event_types, partner_api, receiver, required
):
    receiver.answer_challenges()
    created = partner_api.post(
        "/api/v1/endpoints/", {"name": "hooks", "url": receiver.url_for()}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["awaiting_verification"] is True and body["verified_at"] is None
    assert body["verification_sent_at"] is not None
    run_queue()
    shown = partner_api.get(f"/api/v1/endpoints/{body['id']}/").json()
    assert shown["awaiting_verification"] is False and shown["verified_at"] is not None
    assert [r.json()["type"] for r in receiver.requests] == [VERIFICATION]


def test_wrong_challenge_is_a_clear_400_and_writes_nothing(
    event_types, partner, partner_api, receiver, required
):
    receiver.default = Response(500, "")
    endpoint = make_endpoint(partner, url=receiver.url_for())
    run_queue()
    before = Endpoint.objects.values().get(pk=endpoint.pk)
    for body in ({"challenge": "whch_wrong"}, {"challenge": ""}, {"challenge": 5}, {}):
        answer = partner_api.post(
            f"/api/v1/endpoints/{endpoint.public_id}/verify/", body, format="json"
        )
        assert answer.status_code == 400, body
        assert "challenge" in answer.json()["errors"]
    wrong = partner_api.post(
        f"/api/v1/endpoints/{endpoint.public_id}/verify/", {"challenge": "whch_x"}, format="json"
    )
    assert "not the endpoint's current challenge" in wrong.json()["errors"]["challenge"][0]
    assert Endpoint.objects.values().get(pk=endpoint.pk) == before
    assert verified_entries(endpoint) == 0


def test_pasting_the_received_challenge_verifies_and_the_held_delivery_goes(
    event_types, partner, partner_api, receiver, required
):
    receiver.default = Response(202, "accepted")  # 2xx, but it does not answer it
    endpoint = make_endpoint(partner, url=receiver.url_for())
    event = publish("order.paid", {"n": 1}, partner=partner)
    run_queue()
    (request,) = receiver.wait_for(1)
    listed = partner_api.get(f"/api/v1/deliveries/?event={event.public_id}").json()["results"]
    assert [d["reason"]["code"] for d in listed] == ["awaiting_verification"]
    answer = partner_api.post(
        f"/api/v1/endpoints/{endpoint.public_id}/verify/",
        {"challenge": request.json()["data"]["challenge"]},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["verified_at"] is not None
    run_queue()
    assert [r.json()["type"] for r in receiver.requests] == [VERIFICATION, "order.paid"]
    assert Delivery.objects.get(event=event).status == "succeeded"
    entry = AuditEntry.objects.get(object_id=endpoint.public_id, action=Action.VERIFIED)
    assert entry.actor.startswith("api:") and entry.details == {"how": "pasted"}


def test_verify_again_sends_a_new_challenge_and_holds_until_answered(
    event_types, partner, partner_api, receiver, required
):
    receiver.answer_challenges()
    endpoint = make_endpoint(partner, url=receiver.url_for())
    run_queue()
    assert Endpoint.objects.get(pk=endpoint.pk).verified_at is not None
    again = partner_api.post(f"/api/v1/endpoints/{endpoint.public_id}/verification/")
    assert again.status_code == 202, again.content
    body = again.json()
    assert body["awaiting_verification"] is True and body["status"] == "pending"
    assert Delivery.objects.get(public_id=body["delivery"]).event.public_id == body["event"]
    assert Endpoint.objects.get(pk=endpoint.pk).awaiting_verification
    run_queue()
    first, second = receiver.wait_for(2)
    assert first.json()["data"]["challenge"] != second.json()["data"]["challenge"]
    assert Endpoint.objects.get(pk=endpoint.pk).verified_at is not None
    actions = AuditEntry.objects.filter(object_id=endpoint.public_id).values_list(
        "action", flat=True
    )
    assert list(actions.order_by("id"))[-2:] == [Action.VERIFICATION_SENT, Action.VERIFIED]
    # The event resource does not hand the challenge back.
    shown = partner_api.get(f"/api/v1/events/{body['event']}/").json()
    assert shown["data"]["challenge"] == "••••"


def test_verify_again_with_a_body_is_refused(event_types, partner, partner_api):
    endpoint = make_endpoint(partner)
    answer = partner_api.post(
        f"/api/v1/endpoints/{endpoint.public_id}/verification/", {"x": 1}, format="json"
    )
    assert answer.status_code == 400
    assert not Delivery.objects.filter(endpoint=endpoint).exists()


def test_a_challenge_is_never_replayed_to_another_endpoint(
    event_types, partner, partner_api, receiver, required
):
    receiver.default = Response(500, "")
    endpoint = make_endpoint(partner, url=receiver.url_for("/theirs"))
    # The same partner's other endpoint, subscribed to webhookhub's own events.
    mine = make_endpoint(
        partner, name="mine", url=receiver.url_for("/mine"), event_types=["webhookhub.*"]
    )
    run_queue()
    challenge = Delivery.objects.get(endpoint=endpoint).event
    to_mine = partner_api.post(
        f"/api/v1/events/{challenge.public_id}/replay/",
        {"endpoint": mine.public_id},
        format="json",
    )
    assert to_mine.status_code == 400, to_mine.content
    assert "only to the endpoint it verifies" in str(to_mine.json()["errors"])
    to_all = partner_api.post(f"/api/v1/events/{challenge.public_id}/replay/", {}, format="json")
    assert to_all.status_code == 202 and to_all.json()["queued"] == 1
    run_queue()
    paths = [r.path for r in receiver.requests if r.json()["id"] == challenge.public_id]
    assert paths == ["/theirs", "/theirs"]
