"""The published schema and the validators agree (issue 11, F12): what the schema does
not allow is refused with a 400 naming the field, not accepted or silently changed."""

import pytest

from endpoints.models import Endpoint
from events.filters import FilterError, compile_filter, validate_filter
from tests.api.test_errors import assert_error
from tests.factories import make_endpoint

pytestmark = pytest.mark.django_db

GOOD_ENDPOINT = {"name": "hooks", "url": "https://hooks.example.com/in"}


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"or": [None]}, "filter.or[0]"),
        ({"and": [{"path": "data.x", "op": "exists", "value": True}, None]}, "filter.and[1]"),
        ({"or": [{"and": [None]}]}, "filter.or[0].and[0]"),
    ],
)
def test_a_null_member_of_a_combinator_is_a_400_naming_it(partner_api, event_types, spec, where):
    response = partner_api.post("/api/v1/endpoints/", {**GOOD_ENDPOINT, "filter": spec})
    body = assert_error(response, 400, "filter")
    assert where in body["errors"]["filter"][0]
    assert not Endpoint.objects.exists()


def test_a_null_member_is_refused_on_patch_too(partner, partner_api, event_types):
    endpoint = make_endpoint(partner)
    response = partner_api.patch(
        f"/api/v1/endpoints/{endpoint.public_id}/", {"filter": {"or": [None]}}
    )
    assert_error(response, 400, "filter")
    endpoint.refresh_from_db()
    assert endpoint.filter in (None, {})


@pytest.mark.parametrize("spec", [None, {}, {"or": [{}]}])
def test_null_or_empty_as_the_whole_filter_still_matches_everything(partner_api, event_types, spec):
    response = partner_api.post("/api/v1/endpoints/", {**GOOD_ENDPOINT, "filter": spec})
    assert response.status_code == 201, response.content


def test_a_stored_filter_with_a_null_member_still_matches_as_before():
    """Accepted before the rule: fan-out keeps matching it (null matches every event)."""
    with pytest.raises(FilterError) as refused:
        validate_filter({"or": [None]})
    assert refused.value.field == "filter.or[0]"
    assert compile_filter({"or": [None]})({"data": {}}) is True


@pytest.mark.parametrize("value", ["101", "0", "-1", "1.5", "abc", "", "1e2", "9" * 5000])
@pytest.mark.parametrize("path", ["/api/v1/events/", "/api/v1/endpoints/", "/api/v1/event-types/"])
def test_a_limit_outside_1_to_100_is_a_400_naming_limit(partner_api, event_types, path, value):
    body = assert_error(partner_api.get(path, {"limit": value}), 400, "limit")
    assert "100" in body["errors"]["limit"][0]


def test_limit_given_twice_is_a_400(partner_api):
    assert_error(partner_api.get("/api/v1/events/?limit=5&limit=7"), 400, "limit")


@pytest.mark.parametrize("value", ["1", "100", "050"])
def test_a_limit_from_1_to_100_is_taken(partner_api, value):
    assert partner_api.get("/api/v1/events/", {"limit": value}).status_code == 200


def test_the_schema_publishes_the_limit_range_for_every_list(partner_api):
    schema = partner_api.get("/api/schema/", {"format": "json"}).json()
    lists = [
        operation
        for path_item in schema["paths"].values()
        for method, operation in path_item.items()
        if method == "get" and any(p["name"] == "cursor" for p in operation.get("parameters", []))
    ]
    assert len(lists) >= 4
    for operation in lists:
        (limit,) = [p for p in operation["parameters"] if p["name"] == "limit"]
        assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 100}
        assert "400" in operation["responses"]


def test_a_subscription_pattern_with_a_trailing_newline_is_refused(partner_api, event_types):
    response = partner_api.post(
        "/api/v1/endpoints/",
        {"name": "n", "url": "https://hooks.example.com/", "event_types": ["order.paid\n"]},
        format="json",
    )
    assert response.status_code == 400 and "event_types.0" in response.json()["errors"]
    assert not Endpoint.objects.exists()


def test_the_schema_says_a_subscription_object_needs_only_its_event_type(partner_api, client):
    schema = client.get("/api/schema/?format=json").json()
    endpoint = schema["components"]["schemas"]["EndpointWriteRequest"]
    (with_filter,) = [
        s for s in endpoint["properties"]["event_types"]["items"]["oneOf"] if s["type"] == "object"
    ]
    assert with_filter["required"] == ["event_type"]
    created = partner_api.post(
        "/api/v1/endpoints/",
        {"name": "n", "url": "https://hooks.example.com/", "event_types": [{"event_type": "*"}]},
        format="json",
    )
    assert created.status_code == 201, created.content
