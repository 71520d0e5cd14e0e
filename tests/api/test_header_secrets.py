"""Custom header values are secrets: encrypted at rest, write-only in the API, masked in
attempt records; an edit keeps what it does not replace. Header values and the bearer
token follow RFC 9110; protected and hop-by-hop headers are refused, not dropped."""

import pytest
from django.db import connection

from deliveries import engine
from deliveries.models import DeliveryAttempt
from endpoints.models import Endpoint
from events.services import publish
from tests.api.test_errors import assert_error
from tests.factories import make_endpoint

SECRET = "hunter2-long-secret-value"
SHOWN = "••••alue"
HOP_BY_HOP = (
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "proxy-authorization",
    "proxy-connection",
)
BAD_VALUES = [
    "ab\x01cd",
    "ab\x0bcd",  # VT
    "ab\x0ccd",  # FF
    "ab\x85cd",  # NEL
    "caf\u00e9",  # Latin-1, not ASCII
    "\ud55c\uae00",  # Hangul
    " leading",
    "trailing ",
    "trailing\t",
]


def headers_column(pk) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT headers FROM endpoints_endpoint WHERE id = %s", [pk])
        return str(cursor.fetchone()[0])


def deliver(event):
    engine.deliver(list(event.deliveries.values_list("pk", flat=True)))


@pytest.mark.django_db
def test_header_values_are_write_only_and_encrypted_at_rest(partner, partner_api, event_types):
    created = partner_api.post(
        "/api/v1/endpoints/",
        {"name": "hooks", "url": "https://hooks.example.com/in", "headers": {"X-Password": SECRET}},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["headers"] == {"X-Password": SHOWN}
    endpoint_id = created.json()["id"]
    detail = partner_api.get(f"/api/v1/endpoints/{endpoint_id}/")
    listed = partner_api.get("/api/v1/endpoints/")
    assert detail.json()["headers"] == {"X-Password": SHOWN}
    for response in (created, detail, listed):
        assert "hunter2" not in response.content.decode()
    endpoint = Endpoint.objects.get(public_id=endpoint_id)
    column = headers_column(endpoint.pk)
    assert column.startswith("fernet:") and "hunter2" not in column and "X-Password" not in column
    assert endpoint.headers == {"X-Password": SECRET}


@pytest.mark.django_db(transaction=True)
def test_a_masked_value_sent_back_keeps_it_and_a_new_value_replaces_it(
    partner, partner_api, event_types, receiver
):
    created = partner_api.post(
        "/api/v1/endpoints/",
        {
            "name": "hooks",
            "url": receiver.url_for("/hook"),
            "headers": {"X-Password": SECRET, "X-Tenant": "acme"},
        },
        format="json",
    ).json()
    url = f"/api/v1/endpoints/{created['id']}/"
    shown = partner_api.get(url).json()["headers"]
    assert shown == {"X-Password": SHOWN, "X-Tenant": "••••"}

    # GET -> edit one header -> PATCH back: the other keeps its real value.
    edited = partner_api.patch(url, {"headers": {**shown, "X-Tenant": "globex"}}, format="json")
    assert edited.status_code == 200, edited.content
    assert edited.json()["headers"] == {"X-Password": SHOWN, "X-Tenant": "••••"}
    deliver(publish("order.paid", {"n": 1}, partner=partner))
    (request,) = receiver.wait_for(1)
    assert request.headers["X-Password"] == SECRET
    assert request.headers["X-Tenant"] == "globex"
    attempt = DeliveryAttempt.objects.get()
    assert attempt.request_headers["X-Password"] == SHOWN
    assert attempt.request_headers["X-Tenant"] == "••••"
    assert "hunter2" not in str(attempt.request_headers)
    attempts = partner_api.get(f"/api/v1/deliveries/{attempt.delivery.public_id}/")
    assert SHOWN in attempts.content.decode() and "hunter2" not in attempts.content.decode()

    # A new value replaces; a name left out is removed.
    replaced = partner_api.patch(
        url, {"headers": {"X-Password": "rotated-secret-0042"}}, format="json"
    )
    assert replaced.json()["headers"] == {"X-Password": "••••0042"}
    deliver(publish("order.paid", {"n": 2}, partner=partner))
    second = receiver.wait_for(2)[1]
    assert second.headers["X-Password"] == "rotated-secret-0042"
    assert "X-Tenant" not in second.headers


@pytest.mark.django_db
def test_a_masked_value_that_matches_no_current_value_is_refused(partner, partner_api, event_types):
    created = partner_api.post(
        "/api/v1/endpoints/",
        {"name": "hooks", "url": "https://hooks.example.com/in", "headers": {"X-New": "••••"}},
        format="json",
    )
    body = assert_error(created, 400, "headers")
    assert "X-New is masked" in body["errors"]["headers"][0]
    assert not Endpoint.objects.exists()
    endpoint = make_endpoint(partner, headers={"X-Password": SECRET})
    patched = partner_api.patch(
        f"/api/v1/endpoints/{endpoint.public_id}/",
        {"headers": {"X-Password": "••••nope"}},
        format="json",
    )
    assert_error(patched, 400, "headers")
    endpoint.refresh_from_db()
    assert endpoint.headers == {"X-Password": SECRET}


@pytest.mark.django_db
@pytest.mark.parametrize("value", BAD_VALUES)
def test_header_values_outside_rfc_9110_are_400s_naming_the_header(
    partner, partner_api, event_types, value
):
    created = partner_api.post(
        "/api/v1/endpoints/",
        {"name": "hooks", "url": "https://hooks.example.com/in", "headers": {"X-Password": value}},
        format="json",
    )
    body = assert_error(created, 400, "headers")
    assert "The value of X-Password" in body["errors"]["headers"][0]
    assert "X-Password" in body["detail"]
    assert not Endpoint.objects.exists()

    endpoint = make_endpoint(partner, headers={"X-Password": SECRET})
    patched = partner_api.patch(
        f"/api/v1/endpoints/{endpoint.public_id}/",
        {"name": "renamed", "headers": {"X-Password": value}},
        format="json",
    )
    assert_error(patched, 400, "headers")
    endpoint.refresh_from_db()
    assert endpoint.headers == {"X-Password": SECRET} and endpoint.name != "renamed"


@pytest.mark.django_db
@pytest.mark.parametrize("value", BAD_VALUES)
def test_bearer_tokens_outside_rfc_9110_are_400s(partner, partner_api, event_types, value):
    created = partner_api.post(
        "/api/v1/endpoints/",
        {"name": "hooks", "url": "https://hooks.example.com/in", "auth_token": value},
        format="json",
    )
    body = assert_error(created, 400, "auth_token")
    assert "Authorization (auth_token)" in body["errors"]["auth_token"][0]
    assert not Endpoint.objects.exists()

    endpoint = make_endpoint(partner, auth_token="tok-good-0123456789")
    patched = partner_api.patch(
        f"/api/v1/endpoints/{endpoint.public_id}/", {"auth_token": value}, format="json"
    )
    assert_error(patched, 400, "auth_token")
    endpoint.refresh_from_db()
    assert endpoint.auth_token == "tok-good-0123456789"


@pytest.mark.django_db
@pytest.mark.parametrize("name", HOP_BY_HOP)
def test_hop_by_hop_headers_are_400s(partner_api, event_types, name):
    created = partner_api.post(
        "/api/v1/endpoints/",
        {"name": "hooks", "url": "https://hooks.example.com/in", "headers": {name: "x"}},
        format="json",
    )
    body = assert_error(created, 400, "headers")
    assert body["errors"]["headers"] == [f"{name} is set by webhookhub and cannot be overridden."]
    assert not Endpoint.objects.exists()
