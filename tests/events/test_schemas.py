"""Event type schemas (issue 16, part 1): `enforce` refuses what does not validate with the
JSON path and rule and writes nothing, `warn` accepts and records the problems, `off`
does nothing; schema changes are versioned and each checked event records its version;
a bad schema or an example that does not validate is refused when saved."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from deliveries.models import Delivery
from events import routing
from events.catalog import event_type_create
from events.models import Event, EventType, SchemaMode
from events.services import events_publish_batch, publish
from tests.factories import PartnerFactory, make_endpoint

pytestmark = pytest.mark.django_db

AMOUNT = {
    "type": "object",
    "properties": {"amount": {"type": "integer"}, "currency": {"enum": ["EUR", "USD"]}},
    "required": ["amount"],
}


def typed(mode, schema=AMOUNT, name="invoice.paid", example=None) -> EventType:
    return event_type_create(name=name, schema=schema, schema_mode=mode, example=example, by="test")


@pytest.fixture
def endpoint(event_types):
    return make_endpoint(PartnerFactory(name="Acme"), event_types=("*",))


def messages_of(exc: ValidationError) -> dict[str, list[str]]:
    return {field: [str(m) for m in errors] for field, errors in exc.message_dict.items()}


def test_enforce_refuses_naming_the_path_and_rule_and_writes_nothing(endpoint):
    typed(SchemaMode.ENFORCE)
    with pytest.raises(ValidationError) as refused:
        publish("invoice.paid", {"amount": "x", "currency": "GBP"})
    assert messages_of(refused.value) == {
        "data": [
            "data.amount: 'x' is not of type 'integer'",
            "data.currency: 'GBP' is not one of ['EUR', 'USD']",
        ]
    }
    with pytest.raises(ValidationError) as missing:
        publish("invoice.paid", {})
    assert messages_of(missing.value) == {"data": ["data: 'amount' is a required property"]}
    assert Event.objects.count() == 0 and Delivery.objects.count() == 0


def test_enforce_accepts_a_valid_payload_and_records_the_version(endpoint):
    event_type = typed(SchemaMode.ENFORCE)
    event = publish("invoice.paid", {"amount": 12, "currency": "EUR"})
    event.refresh_from_db()
    assert event.schema_version == event_type.schema_version == 1
    assert event.schema_problems == []
    assert event.deliveries.count() == 1


def test_enforce_inside_the_callers_transaction_leaves_it_usable(endpoint):
    typed(SchemaMode.ENFORCE)
    with transaction.atomic():
        with pytest.raises(ValidationError):
            publish("invoice.paid", {"amount": 1.5})
        publish("invoice.paid", {"amount": 1})
    assert Event.objects.count() == 1


def test_a_batch_with_one_item_refused_by_its_schema_writes_nothing(endpoint):
    typed(SchemaMode.ENFORCE)
    items = [
        {"type": "invoice.paid", "data": {"amount": 1}},
        {"type": "order.paid", "data": {"anything": True}},
        {"type": "invoice.paid", "data": {"amount": "2"}},
    ]
    with pytest.raises(ValidationError) as refused:
        events_publish_batch(items)
    assert messages_of(refused.value) == {"2.data": ["data.amount: '2' is not of type 'integer'"]}
    assert Event.objects.count() == 0 and Delivery.objects.count() == 0
    items[2]["data"]["amount"] = 2
    results = events_publish_batch(items)
    assert [e.schema_version for e, _ in results] == [1, None, 1]
    assert Event.objects.count() == 3


def test_warn_accepts_flags_and_stores_the_problems(endpoint):
    typed(SchemaMode.WARN)
    event = publish("invoice.paid", {"amount": "x"})
    stored = Event.objects.get(pk=event.pk)
    assert stored.schema_version == 1
    assert stored.schema_problems == [
        {"path": "data.amount", "message": "'x' is not of type 'integer'"}
    ]
    assert stored.deliveries.count() == 1, "delivered all the same"
    ok = Event.objects.get(pk=publish("invoice.paid", {"amount": 3}).pk)
    assert ok.schema_version == 1 and ok.schema_problems == []


def test_warn_in_a_batch_flags_only_the_item_that_did_not_validate(endpoint):
    typed(SchemaMode.WARN)
    results = events_publish_batch(
        [
            {"type": "invoice.paid", "data": {"amount": 1}},
            {"type": "invoice.paid", "data": {"amount": [1]}},
        ]
    )
    stored = {e.payload["amount"] if e.schema_problems == [] else "bad": e for e, _ in results}
    assert set(stored) == {1, "bad"}
    flagged = Event.objects.get(pk=stored["bad"].pk)
    assert flagged.schema_problems[0]["path"] == "data.amount"


def test_warn_records_only_the_first_few_problems(endpoint):
    many = {"type": "object", "additionalProperties": {"type": "integer"}}
    typed(SchemaMode.WARN, schema=many)
    event = publish("invoice.paid", {f"k{n:02}": "x" for n in range(20)})
    assert [p["path"] for p in event.schema_problems] == [f"data.k{n:02}" for n in range(5)]


def test_off_checks_nothing_and_records_no_version(endpoint):
    typed(SchemaMode.OFF)
    event = Event.objects.get(pk=publish("invoice.paid", {"amount": "x"}).pk)
    assert event.schema_version is None and event.schema_problems == []


def test_a_warm_publish_in_enforce_mode_runs_no_select_and_compiles_once(endpoint):
    typed(SchemaMode.ENFORCE)
    publish("invoice.paid", {"amount": 1})  # warm the caches
    key = (EventType.objects.get(name="invoice.paid").pk, 1)
    validator = routing._validators[key]
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        publish("invoice.paid", {"amount": 2})
        with pytest.raises(ValidationError):
            publish("invoice.paid", {"amount": "2"})
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert selects == []
    assert routing._validators[key] is validator, "compiled once"


def test_changing_the_schema_bumps_the_version_and_applies_at_once(endpoint):
    event_type = typed(SchemaMode.ENFORCE)
    first = publish("invoice.paid", {"amount": 1})
    event_type.description = "unchanged schema"
    event_type.save()
    assert EventType.objects.get(pk=event_type.pk).schema_version == 1, "no schema change"
    event_type.schema = {"type": "object", "properties": {"amount": {"type": "string"}}}
    event_type.full_clean()
    event_type.save()
    assert EventType.objects.get(pk=event_type.pk).schema_version == 2
    with pytest.raises(ValidationError) as refused:
        publish("invoice.paid", {"amount": 1})  # valid a moment ago
    assert messages_of(refused.value) == {"data": ["data.amount: 1 is not of type 'string'"]}
    second = publish("invoice.paid", {"amount": "1"})
    assert Event.objects.get(pk=first.pk).schema_version == 1
    assert Event.objects.get(pk=second.pk).schema_version == 2


def test_loaded_and_saved_again_the_version_follows_the_stored_schema(event_types):
    event_type = typed(SchemaMode.WARN)
    loaded = EventType.objects.get(pk=event_type.pk)
    loaded.schema = {**AMOUNT, "required": []}
    loaded.save(update_fields=["schema"])
    assert EventType.objects.get(pk=event_type.pk).schema_version == 2
    loaded.save()
    assert EventType.objects.get(pk=event_type.pk).schema_version == 2


def test_a_type_created_without_a_schema_is_at_version_0_then_1(event_types):
    event_type = event_type_create(name="invoice.sent", by="test")
    assert event_type.schema_version == 0
    event_type.schema = AMOUNT
    event_type.save()
    assert EventType.objects.get(pk=event_type.pk).schema_version == 1


@pytest.mark.parametrize(
    ("schema", "field", "words"),
    [
        ({"type": "nope"}, "schema", "Not a valid JSON Schema (Draft 2020-12): schema.type"),
        ({"properties": {"a": {"minimum": "1"}}}, "schema", "schema.properties.a.minimum"),
        ([1, 2], "schema", "Not a valid JSON Schema"),
        ({"$ref": "https://example.com/s.json"}, "schema", "Only references inside the schema"),
    ],
)
def test_a_bad_schema_is_refused_on_its_field(event_types, schema, field, words):
    with pytest.raises(ValidationError) as refused:
        typed(SchemaMode.WARN, schema=schema)
    assert list(refused.value.message_dict) == [field]
    assert words in refused.value.message_dict[field][0]
    assert not EventType.objects.filter(name="invoice.paid").exists()


def test_an_example_that_does_not_validate_is_refused(event_types):
    with pytest.raises(ValidationError) as refused:
        typed(SchemaMode.OFF, example={"amount": "12"})
    assert messages_of(refused.value) == {
        "example": [
            "The example does not validate against the schema: "
            "example.amount: '12' is not of type 'integer'"
        ]
    }
    assert typed(SchemaMode.OFF, example={"amount": 12}).example == {"amount": 12}


def test_warn_or_enforce_needs_a_schema(event_types):
    with pytest.raises(ValidationError) as refused:
        typed(SchemaMode.ENFORCE, schema=None)
    assert list(refused.value.message_dict) == ["schema_mode"]


def test_a_reference_that_does_not_resolve_is_a_problem_not_a_crash(endpoint):
    typed(SchemaMode.WARN, schema={"properties": {"a": {"$ref": "#/$defs/missing"}}})
    event = publish("invoice.paid", {"a": 1})
    assert event.schema_problems[0]["path"] == "data"
    assert "cannot be resolved" in event.schema_problems[0]["message"]
    EventType.objects.filter(name="invoice.paid").update(schema_mode=SchemaMode.ENFORCE)
    routing.routing_cache_clear()
    with pytest.raises(ValidationError):
        publish("invoice.paid", {"a": 1})


def test_local_references_work(endpoint):
    schema = {
        "$defs": {"money": {"type": "integer", "minimum": 0}},
        "properties": {"amount": {"$ref": "#/$defs/money"}},
    }
    typed(SchemaMode.ENFORCE, schema=schema, example={"amount": 0})
    with pytest.raises(ValidationError) as refused:
        publish("invoice.paid", {"amount": -1})
    assert messages_of(refused.value) == {"data": ["data.amount: -1 is less than the minimum of 0"]}
