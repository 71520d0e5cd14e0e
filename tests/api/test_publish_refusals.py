"""POST /api/v1/events/ refuses the same inputs as in-process publish() (one checker,
webhookhub/json_values.py), as 400 JSON naming the field, writing nothing (issue 11, F4)."""

import json

import pytest

from deliveries.models import Delivery
from events.models import Event
from tests.api.test_errors import assert_error
from tests.factories import make_endpoint

pytestmark = pytest.mark.django_db


def deep_object(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def deep_list(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def body(data: bytes = b"{}", **fields) -> bytes:
    """A publish request with `data` given as raw JSON text."""
    envelope = {"type": "order.paid", **fields}
    return json.dumps(envelope)[:-1].encode() + b', "data": ' + data + b"}"


BAD_BODIES = [
    # (id, raw request body, the errors keys, words in the messages or the detail)
    ("nul-in-value", body(b'{"note": "a\\u0000b"}'), ["data"], "data.note contains a NUL"),
    ("nul-in-key", body(b'{"no\\u0000te": 1}'), ["data"], "A key in data contains a NUL"),
    (
        "nul-nested",
        body(b'{"order": {"items": [{"sku": "x"}, {"sku": "\\u0000"}]}}'),
        ["data"],
        "data.order.items.1.sku contains a NUL",
    ),
    ("surrogate-in-value", body(b'{"s": "\\ud800"}'), ["data"], "data.s is not valid Unicode"),
    ("surrogate-in-key", body(b'{"\\udfff": 1}'), ["data"], "not valid Unicode"),
    ("nan", body(b'{"n": NaN}'), [], "NaN is not valid JSON"),
    ("infinity", body(b'{"n": [Infinity]}'), [], "Infinity is not valid JSON"),
    ("-infinity", body(b'{"n": -Infinity}'), [], "-Infinity is not valid JSON"),
    ("101-deep", body(deep_object(101)), ["data"], "nested more than 100 levels"),
    ("10000-deep", body(deep_object(10_000)), [], "nested more than 100 levels"),
    ("100000-deep", body(b'{"a": ' + deep_list(100_000) + b"}"), [], "nested more than 100"),
    ("not-an-object", body(b'["a"]'), ["data"], "JSON object"),
    ("nul-in-type", body(type="order.paid\x00"), ["type"], "type contains a NUL"),
    ("surrogate-in-type", body(type="order.\ud800"), ["type"], "not valid Unicode"),
    ("unknown-type", body(type="order.nope"), ["type"], "Unknown event type"),
    ("archived-type", body(type="order.refunded"), ["type"], "Unknown event type"),
    ("empty-type", body(type=""), ["type"], "blank"),
    ("nul-in-tag", body(tags=["eu", "v\x00ip"]), ["tags.1"], "tags contains a NUL"),
    ("surrogate-in-tag", body(tags=["\ud83d"]), ["tags.0"], "not valid Unicode"),
    ("tags-not-a-list", body(tags="vip"), ["tags"], "list"),
    ("empty-tag", body(tags=[""]), ["tags.0"], "blank"),
    ("nul-in-source", body(source="sh\x00p"), ["source"], "source contains a NUL"),
    ("long-source", body(source="s" * 201), ["source"], "200"),
    ("nul-in-idempotency-key", body(idempotency_key="k\x00"), ["idempotency_key"], "NUL"),
    ("surrogate-idempotency", body(idempotency_key="\udc00"), ["idempotency_key"], "Unicode"),
    ("nul-in-partner", body(partner="prt_\x00"), ["partner"], "partner contains a NUL"),
    ("unknown-partner", body(partner="prt_nobody"), ["partner"], "Unknown or inactive"),
    ("bad-time", body(occurred_at="yesterday"), ["occurred_at"], "format"),
]


@pytest.fixture
def world(event_types):
    from django.utils import timezone

    event_types["order.refunded"].archived_at = timezone.now()
    event_types["order.refunded"].save()
    make_endpoint()


@pytest.mark.parametrize(
    ("raw", "fields", "words"), [row[1:] for row in BAD_BODIES], ids=[row[0] for row in BAD_BODIES]
)
def test_bad_input_to_the_publish_api_is_a_400_naming_the_field(
    publisher_api, world, raw, fields, words
):
    response = publisher_api.generic("POST", "/api/v1/events/", raw, "application/json")
    error = assert_error(response, 400, *fields)
    shown = " ".join([error["detail"], *(m for ms in error["errors"].values() for m in ms)])
    assert words in shown
    assert Event.objects.count() == 0 and Delivery.objects.count() == 0


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_a_deep_batch_is_a_400_not_a_500(publisher_api, world, depth):
    item = b'{"type": "order.paid", "data": {"a": ' + deep_list(depth) + b"}}"
    response = publisher_api.generic(
        "POST", "/api/v1/events/batch/", b"[" + item + b"]", "application/json"
    )
    assert_error(response, 400)
    assert Event.objects.count() == 0


def test_a_deep_batch_item_within_the_parser_names_the_item(publisher_api, world):
    item = b'{"type": "order.paid", "data": ' + deep_object(150) + b"}"
    good = b'{"type": "order.paid", "data": {}}'
    response = publisher_api.generic(
        "POST", "/api/v1/events/batch/", b"[" + good + b"," + item + b"]", "application/json"
    )
    assert_error(response, 400, "1.data")
    assert Event.objects.count() == 0
