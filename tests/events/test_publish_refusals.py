"""In-process publish() refuses what the API refuses, with a ValidationError naming the
field, before it writes or queries anything that could break the caller's transaction
(issue 11, F4: NUL bytes were a DataError on PostgreSQL, deep payloads a RecursionError)."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import override_settings
from django.utils import timezone as dj_timezone

from deliveries.models import Delivery
from events.models import Event, EventType
from events.services import events_publish_batch, publish
from tests.factories import PartnerFactory, make_endpoint

pytestmark = pytest.mark.django_db


def nested(depth: int) -> dict:
    """`{"a": {"a": ... {}}}`, `depth` objects deep, built without recursion."""
    data: dict = {}
    for _ in range(depth - 1):
        data = {"a": data}
    return data


BAD_INPUTS = [
    # (id, publish() arguments, the field named, words in its message)
    ("nul-in-value", {"data": {"note": "a\x00b"}}, "data", "data.note contains a NUL"),
    ("nul-in-key", {"data": {"no\x00te": 1}}, "data", "A key in data contains a NUL"),
    (
        "nul-nested",
        {"data": {"order": {"items": [{"sku": "x"}, {"sku": "\x00"}]}}},
        "data",
        "data.order.items.1.sku contains a NUL",
    ),
    ("nul-in-nested-key", {"data": {"order": [{"\x00": 1}]}}, "data", "A key in data.order.0"),
    ("surrogate-in-value", {"data": {"s": "\ud800"}}, "data", "data.s is not valid Unicode"),
    ("surrogate-in-key", {"data": {"\udfff": 1}}, "data", "not valid Unicode"),
    ("nan", {"data": {"n": float("nan")}}, "data", "data.n is not JSON-serialisable"),
    ("infinity", {"data": {"n": [float("inf")]}}, "data", "data.n.0 is not JSON-serialisable"),
    ("-infinity", {"data": {"n": float("-inf")}}, "data", "NaN and Infinity"),
    # Built when the test runs (a callable), not at import.
    ("101-deep", {"data": lambda: nested(101)}, "data", "nested more than 100 levels"),
    ("10000-deep", {"data": lambda: nested(10_000)}, "data", "nested more than 100 levels"),
    ("100000-deep", {"data": lambda: nested(100_000)}, "data", "nested more than 100 levels"),
    ("not-an-object", {"data": ["a"]}, "data", "JSON object"),
    ("nul-in-type", {"event_type": "order.paid\x00"}, "type", "type contains a NUL"),
    ("surrogate-in-type", {"event_type": "order.\ud800"}, "type", "not valid Unicode"),
    ("unknown-type", {"event_type": "order.nope"}, "type", "Unknown event type"),
    ("archived-type", {"event_type": "order.refunded"}, "type", "Unknown event type"),
    ("empty-type", {"event_type": ""}, "type", "event type name"),
    ("nul-in-tag", {"tags": ["eu", "v\x00ip"]}, "tags", "tags contains a NUL"),
    ("surrogate-in-tag", {"tags": ["\ud83d"]}, "tags", "not valid Unicode"),
    ("tags-not-a-list", {"tags": "vip"}, "tags", "list of strings"),
    ("empty-tag", {"tags": [""]}, "tags", "non-empty strings"),
    ("nul-in-source", {"source": "sh\x00p"}, "source", "source contains a NUL"),
    ("long-source", {"source": "s" * 201}, "source", "at most 200"),
    ("nul-in-key-of-idempotency", {"idempotency_key": "k\x00"}, "idempotency_key", "NUL"),
    ("surrogate-idempotency", {"idempotency_key": "\udc00"}, "idempotency_key", "Unicode"),
    ("blank-idempotency", {"idempotency_key": "  "}, "idempotency_key", "1 to 200"),
    ("nul-in-partner", {"partner": "prt_\x00"}, "partner", "partner contains a NUL"),
    ("unknown-partner", {"partner": "prt_nobody"}, "partner", "Unknown or inactive"),
    ("inactive-partner", {"partner": "inactive"}, "partner", "inactive"),
    ("naive-time", {"occurred_at": datetime(2026, 1, 1)}, "occurred_at", "aware"),
    ("oversized", {"data": {"blob": "x" * 3000}}, "data", "the limit is 2048 bytes"),
]


@pytest.fixture
def world(event_types):
    """An endpoint subscribed to everything, an archived type and an inactive partner."""
    EventType.objects.filter(name="order.refunded").update(archived_at=dj_timezone.now())
    make_endpoint()
    return {"inactive": PartnerFactory(name="Gone", is_active=False)}


@override_settings(WEBHOOKHUB_MAX_PAYLOAD_BYTES=2048)
@pytest.mark.parametrize(
    ("arguments", "field", "words"),
    [row[1:] for row in BAD_INPUTS],
    ids=[row[0] for row in BAD_INPUTS],
)
def test_bad_input_to_publish_is_a_validation_error_naming_the_field_and_writes_nothing(
    world, arguments, field, words
):
    arguments = dict(arguments)
    if arguments.get("partner") == "inactive":
        arguments["partner"] = world["inactive"]
    event_type = arguments.pop("event_type", "order.paid")
    data = arguments.pop("data", {"order": {"id": 1}})
    data = data() if callable(data) else data
    with transaction.atomic():  # the caller's own transaction
        with pytest.raises(ValidationError) as refused:
            publish(event_type, data, **arguments)
        # Still usable: no database error happened inside it.
        assert Event.objects.count() == 0
        assert Delivery.objects.count() == 0
    assert list(refused.value.message_dict) == [field]
    assert words in " ".join(refused.value.message_dict[field])


def test_a_batch_names_the_item_and_field_and_writes_nothing(world):
    items = [
        {"type": "order.paid", "data": {"n": 1}},
        {"type": "order.paid", "data": nested(10_000)},
    ]
    with pytest.raises(ValidationError) as refused:
        events_publish_batch(items)
    assert list(refused.value.message_dict) == ["1.data"]
    assert Event.objects.count() == 0 and Delivery.objects.count() == 0


def test_the_same_payloads_within_the_limits_are_published(world):
    event = publish(
        "order.paid",
        {"deep": nested(99), "text": "ünïcødé \U0001f600", "n": 1.5, "key\u2028": [None]},
        tags=["eu"],
        source="shop",
        idempotency_key="k-1",
    )
    assert event.created and event.deliveries_count == 1
    assert Event.objects.get().payload["text"] == "ünïcødé \U0001f600"


def test_an_offset_postgresql_does_not_know_is_stored_as_the_same_instant(world):
    odd = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=21, minutes=29)))
    event = publish("order.paid", {}, occurred_at=odd)
    event.refresh_from_db()
    assert event.occurred_at == odd.astimezone(UTC)
