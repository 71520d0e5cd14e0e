"""Endpoint verification end to end: a real qcluster with the setting on and a real
receiver that answers (or does not answer) the challenge."""

import time

import pytest
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from deliveries.models import Delivery, DeliveryStatus
from endpoints.models import ApiToken, Endpoint
from endpoints.services import api_token_create, endpoint_update
from events.services import publish
from tests.e2e.conftest import wait_until
from tests.factories import make_endpoint
from tests.receiver import Response, challenge_answer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("e2e"),
]

VERIFICATION = "webhookhub.endpoint.verification"
REQUIRED = {"WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION": "true"}


def types(requests) -> list[str]:
    return [r.json()["type"] for r in requests]


def test_a_challenge_answered_by_the_receiver_releases_what_was_held(
    event_types, receiver, start_cluster, settings
):
    settings.WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION = True
    receiver.respond_with(lambda r: Response(503, "not up yet") if r.path == "/down" else None)
    start_cluster(extra_env=REQUIRED)
    endpoint = make_endpoint(url=receiver.url_for("/down"))
    orders = [publish("order.paid", {"n": n}, partner=endpoint.partner) for n in range(3)]
    (refused,) = receiver.wait_for(1)
    assert refused.json()["type"] == VERIFICATION
    time.sleep(1.5)  # the dispatcher ticks every 0.5 s: nothing else may go meanwhile
    assert len(receiver.requests) == 1
    assert all(Delivery.objects.get(event=o).status == DeliveryStatus.PENDING for o in orders)

    # The partner deploys its handler at a new URL: a new challenge, answered at once.
    receiver.answer_challenges()
    endpoint_update(endpoint, by="test", url=receiver.url_for("/hooks"))
    requests = receiver.wait_for(5, timeout=15)
    assert types(requests) == [VERIFICATION, VERIFICATION] + ["order.paid"] * 3
    challenge, *delivered = requests[1:]
    assert all(r.path == "/hooks" and r.started_at >= challenge.finished_at for r in delivered)
    wh = Webhook(endpoint.signing_secret)
    for request in requests[1:]:
        wh.verify(request.body, dict(request.headers))
    assert sorted(r.json()["data"]["n"] for r in delivered) == [0, 1, 2]
    assert Endpoint.objects.get(pk=endpoint.pk).verified_at is not None
    wait_until(
        lambda: all(Delivery.objects.get(event=o).status == "succeeded" for o in orders),
        timeout=5,
        message="the orders recorded as delivered",
    )


def test_a_pasted_challenge_sends_the_held_webhooks_within_seconds(
    event_types, receiver, start_cluster, settings
):
    settings.WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION = True
    # A receiver that acknowledges everything but does not implement the challenge.
    receiver.respond_with(lambda r: Response(204, ""))
    start_cluster(extra_env=REQUIRED)
    endpoint = make_endpoint(url=receiver.url_for())
    order = publish("order.paid", {"n": 1}, partner=endpoint.partner)
    (request,) = receiver.wait_for(1)
    assert challenge_answer(request) is not None  # it was the challenge
    wait_until(
        lambda: Delivery.objects.filter(endpoint=endpoint, status="dead").exists(),
        timeout=5,
        message="the unanswered challenge recorded",
    )
    _, raw = api_token_create(role=ApiToken.Role.PARTNER, partner=endpoint.partner, by="test")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    pasted_at = time.monotonic()
    answer = api.post(
        f"/api/v1/endpoints/{endpoint.public_id}/verify/",
        {"challenge": request.json()["data"]["challenge"]},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    _, delivered = receiver.wait_for(2, timeout=10)
    assert delivered.json()["id"] == order.public_id
    assert delivered.started_at - pasted_at < 3
    Webhook(endpoint.signing_secret).verify(delivered.body, dict(delivered.headers))
