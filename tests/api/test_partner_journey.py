"""The partner's and the publisher's tasks end to end, over real HTTP (live server),
with real tokens and a real receiver: what docs/api.md walks a partner through."""

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from deliveries.models import Delivery, DeliveryStatus
from endpoints.models import ApiToken
from tests.api.conftest import make_token, run_queue
from tests.receiver import Response

pytestmark = pytest.mark.django_db(transaction=True)


class Api:
    """A tiny HTTP client for one token, like a partner's script."""

    def __init__(self, base_url: str, token: str):
        self.base = base_url.rstrip("/") + "/api/v1"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def __getattr__(self, method):
        def call(path, **kwargs):
            return self.session.request(method.upper(), self.base + path, timeout=30, **kwargs)

        return call


@pytest.fixture
def partner_http(live_server, partner):
    return Api(live_server.url, make_token(ApiToken.Role.PARTNER, partner))


@pytest.fixture
def publisher_http(live_server):
    return Api(live_server.url, make_token(ApiToken.Role.PUBLISHER))


def test_partner_endpoint_test_event_retry_and_secret_rotation(
    partner, partner_http, publisher_http, event_types, receiver
):
    # Create an endpoint: the signing secret is in this response and nowhere else.
    created = partner_http.post(
        "/endpoints/",
        json={
            "name": "orders",
            "url": receiver.url_for("/hook"),
            "event_types": ["order.*"],
            "retry_policy": {"max_attempts": 1},
        },
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    secret = endpoint["secret"]
    assert secret.startswith("whsec_") and endpoint["id"].startswith("ep_")
    shown = partner_http.get(f"/endpoints/{endpoint['id']}/")
    assert shown.status_code == 200 and secret not in shown.text and "secret" not in shown.json()
    assert secret not in partner_http.get("/endpoints/").text

    # A signed test event: queued for a worker (none runs here, so 202 and a delivery to
    # poll), then its result on that delivery.
    tested = partner_http.post(f"/endpoints/{endpoint['id']}/test/")
    assert tested.status_code == 202, tested.text
    queued = tested.json()
    assert queued["status"] == "pending" and queued["delivery"].startswith("dlv_")
    assert not receiver.requests, "the web request sends nothing itself"
    assert run_queue() == 1
    polled = partner_http.get(f"/deliveries/{queued['delivery']}/")
    assert queued["url"].endswith(f"/api/v1/deliveries/{queued['delivery']}/")
    result = polled.json()
    assert result["status"] == "succeeded" and result["attempts"][0]["trigger"] == "test"
    assert result["attempts"][0]["response_status_code"] == 200
    assert secret not in polled.text, "the attempt's headers are masked"
    (test_request,) = receiver.wait_for(1)
    Webhook(secret).verify(test_request.body, dict(test_request.headers))
    assert test_request.json()["type"] == "webhookhub.test"

    # The publisher publishes an order for this partner; the receiver fails it once.
    receiver.script(Response(500, b"database down"))
    published = publisher_http.post(
        "/events/", json={"type": "order.paid", "data": {"order": 42}, "partner": partner.public_id}
    )
    assert published.status_code == 201, published.text
    assert published.json()["deliveries_count"] == 1
    event_id = published.json()["id"]
    assert run_queue() == 1

    # The partner finds the failed delivery and its attempt.
    dead = partner_http.get("/deliveries/", params={"status": "dead", "event": event_id}).json()
    (delivery,) = dead["results"]
    assert delivery["endpoint"] == endpoint["id"] and delivery["event_type"] == "order.paid"
    detail = partner_http.get(f"/deliveries/{delivery['id']}/").json()
    (attempt,) = detail["attempts"]
    assert attempt["response_status_code"] == 500 and attempt["response_body"] == "database down"
    assert attempt["trigger"] == "auto" and attempt["succeeded"] is False

    # It retries it: same webhook-id, and this time it is received.
    retried = partner_http.post(f"/deliveries/{delivery['id']}/retry/")
    assert retried.status_code == 202 and retried.json()["status"] == "pending"
    assert run_queue() == 1
    first, second = receiver.wait_for(3)[1:]
    assert second.headers["webhook-id"] == first.headers["webhook-id"] == event_id
    assert second.body == first.body
    after = partner_http.get(f"/deliveries/{delivery['id']}/").json()
    assert after["status"] == "succeeded"
    assert [a["trigger"] for a in after["attempts"]] == ["auto", "manual"]
    again = partner_http.post(f"/deliveries/{delivery['id']}/retry/")
    assert again.status_code == 409 and again.json()["detail"]

    # Rotating the secret: deliveries carry both signatures during the grace period.
    rotated = partner_http.post(f"/endpoints/{endpoint['id']}/rotate-secret/", json={})
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != secret
    assert rotated.json()["previous_secret_expires_at"]
    replayed = partner_http.post(f"/events/{event_id}/replay/", json={})
    assert replayed.status_code == 202 and replayed.json() == {"queued": 1}
    assert run_queue() == 1
    rotated_request = receiver.wait_for(4)[-1]
    assert len(rotated_request.headers["webhook-signature"].split(" ")) == 2
    for key in (new_secret, secret):
        Webhook(key).verify(rotated_request.body, dict(rotated_request.headers))
    assert Delivery.objects.get(public_id=delivery["id"]).status == DeliveryStatus.SUCCEEDED


def test_publisher_publishes_idempotently_and_partner_sees_its_event(
    partner, partner_http, publisher_http, event_types, receiver
):
    partner_http.post("/endpoints/", json={"name": "all", "url": receiver.url_for()})
    body = {"type": "order.paid", "data": {"n": 1}, "partner": partner.public_id}
    first = publisher_http.post("/events/", json=body, headers={"Idempotency-Key": "order-1"})
    repeat = publisher_http.post("/events/", json=body, headers={"Idempotency-Key": "order-1"})
    assert (first.status_code, repeat.status_code) == (201, 200)
    assert repeat.json()["id"] == first.json()["id"]
    assert repeat.json()["idempotency_key"] == "order-1"
    listed = partner_http.get("/events/").json()["results"]
    assert [e["id"] for e in listed] == [first.json()["id"]]
    assert partner_http.get(f"/events/{first.json()['id']}/").json()["deliveries"][0]["status"]
    assert publisher_http.post("/endpoints/", json={}).status_code == 403
    assert partner_http.post("/events/", json=body).status_code == 403


def test_schema_and_docs_are_served(live_server):
    schema = requests.get(live_server.url + "/api/schema/", timeout=30)
    assert schema.status_code == 200 and "openapi: 3" in schema.text
    assert "/api/v1/endpoints/{id}/rotate-secret/" in schema.text
    for component in ("Filter", "RetryPolicy", "WebhookEnvelope", "Error"):
        assert f"\n    {component}:\n" in schema.text
    docs = requests.get(live_server.url + "/api/docs/", timeout=30)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
