"""Event type schemas through the API (issue 16, part 1): the catalog shows schema, mode,
version and example; POST takes them and refuses a bad schema or an example that does not
validate; publishing against an `enforce` schema is a 400 naming the JSON path and rule,
and a `warn` event shows its problems."""

import pytest

from deliveries.models import Delivery
from events.models import Event, EventType
from tests.api.test_errors import assert_error
from tests.factories import make_endpoint

pytestmark = pytest.mark.django_db

AMOUNT = {
    "type": "object",
    "properties": {"amount": {"type": "integer"}},
    "required": ["amount"],
}


def create(api, **fields):
    body = {"name": "invoice.paid", "schema": AMOUNT, **fields}
    return api.post("/api/v1/event-types/", body, format="json")


def test_the_event_type_shows_schema_mode_version_and_example(
    publisher_api, partner_api, event_types
):
    created = create(publisher_api, schema_mode="enforce", example={"amount": 5})
    assert created.status_code == 201, created.content
    shown = partner_api.get("/api/v1/event-types/invoice.paid/")
    assert shown.status_code == 200
    body = shown.json()
    assert body["schema"] == AMOUNT and body["example"] == {"amount": 5}
    assert (body["schema_mode"], body["schema_version"]) == ("enforce", 1)
    assert partner_api.get("/api/v1/event-types/order.paid/").json()["schema_mode"] == "off"
    assert partner_api.get("/api/v1/event-types/order.paid/").json()["schema_version"] == 0


def test_a_bad_schema_is_a_400_on_schema(publisher_api, event_types):
    body = assert_error(create(publisher_api, schema={"type": 5}), 400, "schema")
    assert "Not a valid JSON Schema (Draft 2020-12): schema.type" in body["errors"]["schema"][0]
    assert not EventType.objects.filter(name="invoice.paid").exists()


def test_an_example_that_does_not_validate_is_a_400_on_example(publisher_api, event_types):
    body = assert_error(create(publisher_api, example={"amount": "5"}), 400, "example")
    assert body["errors"]["example"] == [
        "The example does not validate against the schema: "
        "example.amount: '5' is not of type 'integer'"
    ]


def test_a_mode_without_a_schema_or_unknown_is_a_400(publisher_api, event_types):
    assert_error(create(publisher_api, schema=None, schema_mode="warn"), 400, "schema_mode")
    assert_error(create(publisher_api, schema_mode="strict"), 400, "schema_mode")


def test_publish_refused_by_an_enforce_schema_is_a_400_naming_path_and_rule(
    publisher_api, partner, event_types
):
    make_endpoint(partner)
    create(publisher_api, schema_mode="enforce")
    refused = publisher_api.post(
        "/api/v1/events/", {"type": "invoice.paid", "data": {"amount": "x"}}, format="json"
    )
    body = assert_error(refused, 400, "data")
    assert body["errors"]["data"] == ["data.amount: 'x' is not of type 'integer'"]
    batch = publisher_api.post(
        "/api/v1/events/batch/",
        [
            {"type": "invoice.paid", "data": {"amount": 1}},
            {"type": "invoice.paid", "data": {}},
        ],
        format="json",
    )
    body = assert_error(batch, 400, "1.data")
    assert body["errors"]["1.data"] == ["data: 'amount' is a required property"]
    assert Event.objects.count() == 0 and Delivery.objects.count() == 0


def test_a_warn_event_shows_its_version_and_problems(publisher_api, partner_api, event_types):
    create(publisher_api, schema_mode="warn")
    published = publisher_api.post(
        "/api/v1/events/", {"type": "invoice.paid", "data": {"amount": 1.5}}, format="json"
    )
    assert published.status_code == 201, published.content
    event = published.json()
    assert event["schema_version"] == 1
    assert event["schema_problems"] == [
        {"path": "data.amount", "message": "1.5 is not of type 'integer'"}
    ]
    shown = publisher_api.get(f"/api/v1/events/{event['id']}/").json()
    assert shown["schema_problems"] == event["schema_problems"]
    off = publisher_api.post(
        "/api/v1/events/", {"type": "order.paid", "data": {"amount": "x"}}, format="json"
    ).json()
    assert (off["schema_version"], off["schema_problems"]) == (None, [])
