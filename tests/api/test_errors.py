"""Bad input of every kind (SPEC §5) is a 4xx naming the problem, in one shape, and
writes nothing."""

import json

import pytest
from django.test import override_settings

from endpoints.models import Endpoint
from events.models import Event, EventType
from tests.factories import make_endpoint

pytestmark = pytest.mark.django_db


def assert_error(response, status, *fields):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"detail", "errors"}, body
    assert isinstance(body["detail"], str) and body["detail"]
    assert sorted(body["errors"]) == sorted(fields), body
    for messages in body["errors"].values():
        assert messages and all(isinstance(m, str) and m for m in messages)
    return body


GOOD_ENDPOINT = {"name": "hooks", "url": "https://hooks.example.com/in"}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"name": 123}, "name", "string"),
        ({"name": ""}, "name", "blank"),
        ({"url": "ftp://hooks.example.com/"}, "url", "http"),
        ({"url": "http://169.254.169.254/latest"}, "url", "metadata"),
        ({"url": "not a url"}, "url", ""),
        ({"event_types": []}, "event_types", ""),
        ({"event_types": ["order.nope"]}, "event_types.0", "Unknown event type"),
        ({"event_types": ["Order Paid"]}, "event_types.0", "not an event type"),
        ({"filter": {"path": "data.x", "op": "near", "value": 1}}, "filter", "op"),
        ({"filter": {"path": "data.x", "op": "regex", "value": "(a"}}, "filter", "RE2"),
        ({"retry_policy": {"max_attempts": 0}}, "retry_policy", "max_attempts"),
        ({"retry_policy": {"strategy": "sometimes"}}, "retry_policy", "strategy"),
        ({"retry_policy": {"unknown": 1}}, "retry_policy", "unknown"),
        ({"headers": {"webhook-signature": "x"}}, "headers", "cannot be overridden"),
        ({"headers": {"X-Ok": 5}}, "headers.X-Ok", "string"),
        ({"timeout_seconds": 0}, "timeout_seconds", "1"),
        ({"timeout_seconds": "5"}, "timeout_seconds", "integer"),
        ({"ordered": "yes"}, "ordered", "boolean"),
        ({"rate_limit_per_second": 10_001}, "rate_limit_per_second", "10000"),
        ({"description": "a\x00b"}, "description", "NUL"),
        ({"colour": "blue"}, "colour", "Unknown field"),
    ],
)
def test_bad_endpoint_fields_are_400s_naming_the_field(
    partner_api, event_types, change, field, words
):
    response = partner_api.post("/api/v1/endpoints/", {**GOOD_ENDPOINT, **change}, format="json")
    body = assert_error(response, 400, field)
    assert words.lower() in " ".join(body["errors"][field]).lower()
    assert not Endpoint.objects.exists()


def test_patch_checks_like_create_and_changes_nothing_on_error(partner, partner_api, event_types):
    endpoint = make_endpoint(partner, url="https://hooks.example.com/in")
    response = partner_api.patch(
        f"/api/v1/endpoints/{endpoint.public_id}/",
        {"name": "renamed", "url": "gopher://x", "enabled": False},
        format="json",
    )
    assert_error(response, 400, "url")
    endpoint.refresh_from_db()
    assert (endpoint.name, endpoint.enabled) != ("renamed", False)
    assert partner_api.put(f"/api/v1/endpoints/{endpoint.public_id}/", {}).status_code == 405


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"data": {}}, ["type"]),
        ({"type": "order.paid"}, ["data"]),
        ({"type": "order.nope", "data": {}}, ["type"]),
        ({"type": "order.paid", "data": [1, 2]}, ["data"]),
        ({"type": "order.paid", "data": {"k": "a\x00b"}}, ["data"]),
        ({"type": "order.paid", "data": {}, "partner": "prt_nobody"}, ["partner"]),
        ({"type": "order.paid", "data": {}, "occurred_at": "yesterday"}, ["occurred_at"]),
        ({"type": "order.paid", "data": {}, "occurred_at": "9999-12-31T23:00:00-12:00"}, ["occurred_at"]),
        ({"type": "order.paid", "data": {}, "tags": "vip"}, ["tags"]),
        ({"type": "order.paid", "data": {}, "tags": [""]}, ["tags.0"]),
        ({"type": "order.paid", "data": {}, "idempotency_key": "k" * 201}, ["idempotency_key"]),
        ({"type": "order.paid", "data": {}, "extra": 1}, ["extra"]),
    ],
)  # fmt: skip
def test_bad_events_are_400s_naming_the_field(publisher_api, event_types, body, fields):
    assert_error(publisher_api.post("/api/v1/events/", body, format="json"), 400, *fields)
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [b"{", b"not json", b'{"type": NaN}', b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe"],
)
def test_malformed_json_is_a_400(publisher_api, raw):
    response = publisher_api.generic("POST", "/api/v1/events/", raw, "application/json")
    assert_error(response, 400)


def test_deeply_nested_but_parseable_payload_is_a_400(publisher_api, event_types):
    data = {}
    for _ in range(150):
        data = {"a": data}
    response = publisher_api.post(
        "/api/v1/events/", {"type": "order.paid", "data": data}, format="json"
    )
    assert_error(response, 400, "data")


def test_other_content_types_are_415(publisher_api):
    response = publisher_api.generic(
        "POST", "/api/v1/events/", b"type=x", "application/x-www-form-urlencoded"
    )
    assert_error(response, 415)


@override_settings(WEBHOOKHUB_MAX_PAYLOAD_BYTES=2048)
def test_oversized_body_is_a_413_before_parsing(publisher_api, event_types):
    big = json.dumps({"type": "order.paid", "data": {"blob": "x" * 4000}}).encode()
    response = publisher_api.generic("POST", "/api/v1/events/", big, "application/json")
    body = assert_error(response, 413)
    assert "2048" in body["detail"]
    # Refused on the declared length alone: even a body that is not JSON at all.
    junk = publisher_api.generic("POST", "/api/v1/events/", b"\x00" * 5000, "application/json")
    assert_error(junk, 413)
    assert not Event.objects.exists()


@override_settings(WEBHOOKHUB_MAX_PAYLOAD_BYTES=2048)
def test_envelope_over_the_limit_is_a_413_too(publisher_api, event_types):
    # Under the limit as sent (ASCII escapes), over it once encoded as the envelope.
    body = json.dumps({"type": "order.paid", "data": {"s": "é" * 1000}}, ensure_ascii=False)
    assert len(body.encode()) < 2048
    response = publisher_api.generic("POST", "/api/v1/events/", body.encode(), "application/json")
    assert response.status_code in (201, 413)
    data = {"type": "order.paid", "data": {"s": "x" * 1990}}
    response = publisher_api.post("/api/v1/events/", data, format="json")
    assert_error(response, 413)


def test_batch_is_all_or_nothing_and_names_the_bad_item(publisher_api, event_types):
    batch = [
        {"type": "order.paid", "data": {"n": 1}},
        {"type": "order.paid", "data": {"n": 2}, "idempotency_key": "b-2"},
        {"type": "order.unknown", "data": {"n": 3}},
    ]
    assert_error(publisher_api.post("/api/v1/events/batch/", batch, format="json"), 400, "2.type")
    assert not Event.objects.exists()
    batch[2] = {"type": "order.paid", "data": {"n": 3}, "colour": "red"}
    assert_error(publisher_api.post("/api/v1/events/batch/", batch, format="json"), 400, "2.colour")
    empty = publisher_api.post("/api/v1/events/batch/", [], format="json")
    assert_error(empty, 400, "non_field_errors")
    not_a_list = publisher_api.post("/api/v1/events/batch/", {"events": []}, format="json")
    assert_error(not_a_list, 400, "non_field_errors")
    good = publisher_api.post("/api/v1/events/batch/", batch[:2], format="json")
    assert good.status_code == 201 and good.json()["created"] == 2
    assert [e["data"] for e in good.json()["events"]] == [{"n": 1}, {"n": 2}]
    repeat = publisher_api.post("/api/v1/events/batch/", batch[1:2], format="json")
    assert repeat.status_code == 200 and repeat.json()["created"] == 0
    assert Event.objects.count() == 2


@override_settings(WEBHOOKHUB_API_MAX_BATCH_EVENTS=3)
def test_batch_has_a_size_limit(publisher_api, event_types):
    batch = [{"type": "order.paid", "data": {}}] * 4
    response = publisher_api.post("/api/v1/events/batch/", batch, format="json")
    assert_error(response, 400, "non_field_errors")


def test_idempotency_header_and_body_must_agree(publisher_api, event_types):
    body = {"type": "order.paid", "data": {}, "idempotency_key": "a"}
    response = publisher_api.post("/api/v1/events/", body, format="json", HTTP_IDEMPOTENCY_KEY="b")
    assert_error(response, 400, "idempotency_key")
    same = publisher_api.post("/api/v1/events/", body, format="json", HTTP_IDEMPOTENCY_KEY="a")
    assert same.status_code == 201


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/deliveries/", {"status": "lost"}, "status"),
        ("/api/v1/events/", {"created_after": "last tuesday"}, "created_after"),
        ("/api/v1/events/", {"created_before": "9999-12-31T23:59:59-12:00"}, "created_before"),
        ("/api/v1/events/", {"cursor": "garbage"}, "cursor"),
        ("/api/v1/events/", {"cursor": "cD1ub3QtYS10aW1l"}, "cursor"),  # p=not-a-time
        ("/api/v1/deliveries/", {"event_type": "a\x00b"}, "event_type"),
        ("/api/v1/event-types/", {"archived": "perhaps"}, "archived"),
    ],
)
def test_bad_query_parameters_are_400s(partner_api, path, params, field):
    assert_error(partner_api.get(path, params), 400, field)


@pytest.mark.parametrize(
    "path",
    ["/api/v1/endpoints/42/", "/api/v1/endpoints/ep_nope/", "/api/v1/events/%00/",
     "/api/v1/deliveries/dlv_" + "x" * 60 + "/", "/api/v1/nothing-here/", "/api/v2/events/"],
)  # fmt: skip
def test_bad_ids_and_paths_are_json_404s(partner_api, path):
    assert_error(partner_api.get(path), 404)


def test_event_type_names_are_checked(publisher_api, event_types):
    assert_error(
        publisher_api.post("/api/v1/event-types/", {"name": "Bad Name"}, format="json"), 400, "name"
    )
    assert_error(
        publisher_api.post("/api/v1/event-types/", {"name": "order.paid"}, format="json"),
        400,
        "name",
    )
    assert_error(
        publisher_api.post("/api/v1/event-types/", {"name": "webhookhub.mine"}, format="json"),
        400,
        "name",
    )
    assert_error(publisher_api.post("/api/v1/event-types/webhookhub.test/archive/"), 400, "name")
    assert not EventType.objects.filter(name__in=["webhookhub.mine"]).exists()


def test_offsets_postgresql_does_not_know_are_accepted_as_the_same_instant(
    publisher_api, event_types
):
    """Found by Schemathesis: Python takes offsets up to ±23:59, PostgreSQL ±15:59."""
    odd = "2026-01-02T03:04:05+21:29"
    listed = publisher_api.get("/api/v1/events/", {"created_after": odd})
    assert listed.status_code == 200
    body = {"type": "order.paid", "data": {}, "occurred_at": odd}
    created = publisher_api.post("/api/v1/events/", body, format="json")
    assert created.status_code == 201 and created.json()["occurred_at"] == "2026-01-01T05:35:05Z"
