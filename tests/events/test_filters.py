import ast

import pytest

from events import filters
from events.filters import FilterError, compile_filter, matches, validate_filter

ENVELOPE = {
    "id": "evt_1",
    "type": "order.created",
    "timestamp": "2024-05-01T12:00:00Z",
    "data": {
        "order": {
            "amount": 150,
            "price": 9.5,
            "currency": "EUR",
            "note": None,
            "paid": True,
            "tags": ["vip", "eu", 1],
            "meta": {"source": "web"},
        },
        "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 0}],
        "flags": {"0": "zero-key"},
        "email": "Alice@Example.com",
    },
}


def cond(path, op, value):
    return {"path": path, "op": op, "value": value}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, True),
        ({}, True),
        (cond("type", "eq", "order.created"), True),
        (cond("type", "eq", "order.updated"), False),
        (cond("data.order.amount", "eq", 150), True),
        (cond("data.order.amount", "eq", 150.0), True),
        (cond("data.order.tags", "eq", ["vip", "eu", 1]), True),
        (cond("data.order.tags", "eq", ["vip", "eu", True]), False),
        (cond("data.order.meta", "eq", {"source": "web"}), True),
        (cond("data.order.meta", "eq", {"source": "app"}), False),
        (cond("data.order.note", "eq", None), True),
        (cond("data.order.currency", "eq", None), False),
        (cond("data.order.currency", "ne", "USD"), True),
        (cond("data.order.currency", "ne", "EUR"), False),
        (cond("data.order.amount", "gt", 100), True),
        (cond("data.order.amount", "gt", 150), False),
        (cond("data.order.amount", "gte", 150), True),
        (cond("data.order.amount", "gte", 150.5), False),
        (cond("data.order.price", "lt", 10), True),
        (cond("data.order.price", "lt", 9.5), False),
        (cond("data.order.price", "lte", 9.5), True),
        (cond("data.order.price", "lte", 9), False),
        (cond("data.order.currency", "gt", "ABC"), True),
        (cond("data.order.currency", "lt", "ABC"), False),
        (cond("timestamp", "gte", "2024-01-01"), True),
        (cond("timestamp", "lt", "2024-01-01"), False),
        (cond("data.order.currency", "in", ["USD", "EUR"]), True),
        (cond("data.order.currency", "in", ["USD", "GBP"]), False),
        (cond("data.order.currency", "nin", ["USD", "GBP"]), True),
        (cond("data.order.currency", "nin", ["USD", "EUR"]), False),
        (cond("data.order.amount", "in", [150.0]), True),
        (cond("data.email", "contains", "@Example"), True),
        (cond("data.email", "contains", "@example"), False),
        (cond("data.email", "contains", 1), False),
        (cond("data.order.tags", "contains", "vip"), True),
        (cond("data.order.tags", "contains", "us"), False),
        (cond("data.order.tags", "contains", 1), True),
        (cond("data.order.tags", "contains", True), False),
        (cond("data.order.meta", "contains", "source"), True),
        (cond("data.order.meta", "contains", "web"), False),
        (cond("data.order.amount", "contains", 1), False),
        (cond("data.email", "regex", r"^[a-z]+@example\.com$"), False),
        (cond("data.email", "regex", r"(?i)^[a-z]+@example\.com$"), True),
        (cond("data.email", "regex", "Example"), True),
        (cond("data.order.amount", "regex", "150"), False),
        (cond("data.order.tags", "regex", "vip"), False),
        (cond("data.order.amount", "exists", True), True),
        (cond("data.order.amount", "exists", False), False),
        (cond("data.order.note", "exists", True), True),
        (cond("data.order.note", "exists", False), False),
    ],
)
def test_operators(spec, expected):
    assert matches(spec, ENVELOPE) is expected
    assert compile_filter(spec)(ENVELOPE) is expected


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", 1, False),
        ("eq", None, False),
        ("ne", 1, True),
        ("gt", 0, False),
        ("gte", 0, False),
        ("lt", 0, False),
        ("lte", 0, False),
        ("in", [None, 1], False),
        ("nin", [None, 1], True),
        ("contains", "x", False),
        ("regex", ".*", False),
        ("exists", True, False),
        ("exists", False, True),
    ],
)
@pytest.mark.parametrize(
    "path",
    ["data.missing", "data.order.amount.deeper", "data.items.5.sku", "nope", "data.items.x"],
)
def test_missing_paths(path, op, value, expected):
    assert matches(cond(path, op, value), ENVELOPE) is expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (cond("data.items.0.sku", "eq", "A-1"), True),
        (cond("data.items.1.sku", "eq", "B-2"), True),
        (cond("data.items.1.qty", "eq", 0), True),
        (cond("data.items.1.qty", "eq", False), False),
        (cond("data.items.2.sku", "exists", True), False),
        (cond("data.order.tags.1", "eq", "eu"), True),
        (cond("data.flags.0", "eq", "zero-key"), True),
        (cond("data.items.00.sku", "eq", "A-1"), True),
        (cond("data.items.-1.sku", "exists", True), False),
        (cond("data.items.²", "exists", True), False),
    ],
)
def test_list_indexing(spec, expected):
    assert matches(spec, ENVELOPE) is expected


@pytest.mark.parametrize(
    ("actual", "op", "value", "expected"),
    [
        (True, "eq", 1, False),
        (1, "eq", True, False),
        (False, "eq", 0, False),
        (0, "eq", False, False),
        (True, "eq", True, True),
        (True, "ne", 1, True),
        (1, "ne", True, True),
        (True, "in", [1, 2], False),
        (1, "in", [True], False),
        (True, "nin", [1], True),
        (True, "gt", 0, False),
        (1, "gte", "1", False),
        ("b", "gt", 1, False),
        ([1], "contains", True, False),
        ([True], "contains", 1, False),
        ({"a": True}, "eq", {"a": 1}, False),
        (None, "eq", False, False),
        (0, "eq", None, False),
        ("", "eq", None, False),
    ],
)
def test_strict_json_types(actual, op, value, expected):
    envelope = {"data": {"field": actual}}
    assert matches(cond("data.field", op, value), envelope) is expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"and": [cond("type", "eq", "order.created"), cond("data.order.amount", "gt", 1)]}, True),
        (
            {"and": [cond("type", "eq", "order.created"), cond("data.order.amount", "gt", 999)]},
            False,
        ),
        ({"or": [cond("type", "eq", "nope"), cond("data.order.amount", "gt", 1)]}, True),
        ({"or": [cond("type", "eq", "nope"), cond("data.missing", "exists", True)]}, False),
        ({"and": [{}]}, True),
        ({"or": [None]}, True),
        (
            {
                "and": [
                    {
                        "or": [
                            cond("data.order.currency", "eq", "USD"),
                            cond("data.order.paid", "eq", True),
                        ]
                    },
                    {"or": [cond("data.items.0.qty", "gte", 2), {"and": [cond("id", "eq", "x")]}]},
                ]
            },
            True,
        ),
        (
            {
                "or": [
                    {
                        "and": [
                            cond("data.order.paid", "eq", True),
                            cond("data.order.amount", "lt", 100),
                        ]
                    },
                    {
                        "and": [
                            cond("data.order.paid", "eq", False),
                            cond("data.order.amount", "gt", 100),
                        ]
                    },
                ]
            },
            False,
        ),
    ],
)
def test_combinators(spec, expected):
    assert matches(spec, ENVELOPE) is expected


def nest(levels, leaf=None):
    spec = leaf or cond("type", "exists", True)
    for _ in range(levels):
        spec = {"and": [spec]}
    return spec


def test_nesting_at_limit_is_accepted():
    assert matches(nest(filters.MAX_DEPTH), ENVELOPE) is True


def test_max_conditions_at_limit_is_accepted():
    spec = {"and": [cond("type", "exists", True)] * filters.MAX_CONDITIONS}
    assert matches(spec, ENVELOPE) is True


LONG_PATH = ".".join(["a"] * 129)
DEEP_FIELD = "filter" + ".and[0]" * filters.MAX_DEPTH + ".and"


@pytest.mark.parametrize(
    ("spec", "field", "text"),
    [
        ([], "filter", "must be an object"),
        ("type = x", "filter", "must be an object"),
        (42, "filter", "must be an object"),
        ({"and": [], "or": []}, "filter", "exactly one key"),
        ({"and": [cond("id", "exists", True)], "path": "id"}, "filter", "exactly one key"),
        ({"and": []}, "filter.and", "non-empty list"),
        ({"or": {"path": "id"}}, "filter.or", "non-empty list"),
        ({"and": [cond("id", "exists", True), 3]}, "filter.and[1]", "must be an object"),
        ({"foo": 1}, "filter.foo", "unknown key"),
        ({**cond("id", "eq", 1), "extra": 2}, "filter.extra", "unknown key"),
        ({"op": "eq", "value": 1}, "filter.path", "is required"),
        ({"path": "id", "value": 1}, "filter.op", "is required"),
        ({"path": "id", "op": "eq"}, "filter.value", "is required"),
        ({"path": "id", "op": "exists"}, "filter.value", "is required"),
        (cond(5, "eq", 1), "filter.path", "non-empty string"),
        (cond("", "eq", 1), "filter.path", "non-empty string"),
        (cond("data..amount", "eq", 1), "filter.path", "empty segments"),
        (cond(".data", "eq", 1), "filter.path", "empty segments"),
        (cond("data.", "eq", 1), "filter.path", "empty segments"),
        (cond("x" * 257, "eq", 1), "filter.path", "too long"),
        (cond(".".join(["a"] * 17), "eq", 1), "filter.path", "too many segments"),
        (cond(LONG_PATH, "eq", 1), "filter.path", "too long"),
        (cond("id", 1, 1), "filter.op", "must be one of"),
        (cond("id", "EQ", 1), "filter.op", "must be one of"),
        (cond("id", "like", 1), "filter.op", "must be one of"),
        (cond("id", None, 1), "filter.op", "must be one of"),
        (cond("id", "gt", [1]), "filter.value", "number or a string"),
        (cond("id", "lte", None), "filter.value", "number or a string"),
        (cond("id", "lt", True), "filter.value", "number or a string"),
        (cond("id", "in", "abc"), "filter.value", "must be a list"),
        (cond("id", "nin", None), "filter.value", "must be a list"),
        (cond("id", "in", list(range(257))), "filter.value", "too many items"),
        (cond("id", "exists", 1), "filter.value", "true or false"),
        (cond("id", "exists", "yes"), "filter.value", "true or false"),
        (cond("id", "regex", 1), "filter.value", "must be a string"),
        (cond("id", "regex", "a" * 513), "filter.value", "too long"),
        (cond("id", "regex", r"(a)\1"), "filter.value", "not supported"),
        (cond("id", "regex", "a(?=b)"), "filter.value", "not supported"),
        (cond("id", "regex", "(?<!a)b"), "filter.value", "not supported"),
        (cond("id", "regex", "[unclosed"), "filter.value", "not supported"),
        (cond("id", "eq", float("nan")), "filter", "JSON values"),
        (cond("id", "eq", {1, 2}), "filter", "JSON values"),
        (
            {"and": [{}, {"or": [cond("id", "eq", 1), {"path": "id"}]}]},
            "filter.and[1].or[1].op",
            "required",
        ),
        (
            {"and": [cond("id", "eq", 1), cond("id", "eq", 2) | {"op": 7}]},
            "filter.and[1].op",
            "one of",
        ),
        (nest(filters.MAX_DEPTH + 1), DEEP_FIELD, "nests too deeply"),
        (nest(500), DEEP_FIELD, "nests too deeply"),
        (
            {"or": [cond("id", "exists", True)] * (filters.MAX_CONDITIONS + 1)},
            "filter",
            "too many conditions",
        ),
        (
            {
                "or": [
                    {"and": [cond("id", "exists", True)] * 40},
                    {"and": [cond("id", "exists", True)] * 40},
                ]
            },
            "filter",
            "too many conditions",
        ),
        (cond("data.blob", "eq", "x" * 17_000), "filter", "too large"),
        (cond("data.blob", "in", ["y" * 100] * 200), "filter", "too large"),
    ],
)
def test_validation_errors(spec, field, text):
    with pytest.raises(FilterError) as excinfo:
        validate_filter(spec)
    exc = excinfo.value
    assert exc.field == field
    assert field in str(exc)
    assert text in str(exc)
    assert isinstance(exc, ValueError)
    with pytest.raises(FilterError):
        compile_filter(spec)


def test_custom_field_root_is_used_in_locations():
    with pytest.raises(FilterError) as excinfo:
        validate_filter(
            {"or": [{"path": "id", "op": "bogus", "value": 1}]}, field="subscription.filter"
        )
    assert excinfo.value.field == "subscription.filter.or[0].op"
    assert "subscription.filter.or[0].op" in str(excinfo.value)


def test_matches_raises_for_invalid_filter():
    with pytest.raises(FilterError):
        matches({"path": "id", "op": "nope", "value": 1}, ENVELOPE)


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("(a+)+$", "a" * 50_000, True),
        ("(a+)+b", "a" * 50_000, False),
        ("(a|a)*b", "a" * 50_000, False),
        ("(a|aa)*c", "a" * 50_000, False),
        ("(x+x+)+y", "x" * 50_000, False),
        ("^(x+x+)+$", "x" * 50_000, True),
        ("(.*a){20}", "a" * 50_000, True),
        ("(.*a){20}b", "a" * 50_000, False),
    ],
)
def test_malicious_regexes_complete(pattern, text, expected):
    envelope = {"data": {"s": text}}
    assert matches(cond("data.s", "regex", pattern), envelope) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * (filters.MAX_REGEX_INPUT_BYTES - 1) + "NEEDLE", False),
        ("a" * (filters.MAX_REGEX_INPUT_BYTES - 6) + "NEEDLE", True),
        ("é" * filters.MAX_REGEX_INPUT_BYTES + "NEEDLE", False),
        ("NEEDLE" + "a" * 200_000, True),
    ],
)
def test_regex_only_searches_first_64kb(text, expected):
    assert matches(cond("data.s", "regex", "NEEDLE"), {"data": {"s": text}}) is expected


def test_regex_handles_unencodable_strings():
    envelope = {"data": {"s": "ok\ud800ok"}}
    assert matches(cond("data.s", "regex", "^ok"), envelope) is True
    assert matches(cond("data.s", "regex", "^no"), envelope) is False


GARBAGE = [
    None,
    [],
    "string",
    42,
    3.5,
    True,
    [1, 2, 3],
    {"data": None},
    {"data": "a string"},
    {"data": [1, {"order": {"amount": 5}}]},
    {"data": 7},
    {"data": {"order": None}},
    {"data": {"order": [None, "x"]}},
    {"data": {"order": {"amount": {"nested": [1]}}}},
    {"data": {"order": {"amount": float("nan")}}},
    {"data": {"order": {"amount": float("inf")}}},
    {"data": {"order": {"amount": 10**400}}},
    {"data": {"items": "abc"}},
    {"data": {"items": {"0": None}}},
    {1: 2, None: "x", "data": {(1, 2): 3}},
    {"data": {"order": {"amount": b"bytes"}}},
    {"data": {"order": {"amount": object()}}},
]
ALL_OPS = [
    ("eq", 5),
    ("eq", {"a": [1]}),
    ("ne", 5),
    ("gt", 5),
    ("gte", "a"),
    ("lt", 5.5),
    ("lte", "z"),
    ("in", [5, "x", None]),
    ("nin", [5, [1]]),
    ("contains", "a"),
    ("contains", [1]),
    ("regex", "a+"),
    ("exists", True),
    ("exists", False),
]


@pytest.mark.parametrize("envelope", GARBAGE, ids=[f"garbage{i}" for i in range(len(GARBAGE))])
@pytest.mark.parametrize("path", ["data", "data.order.amount", "data.items.0.sku", "data.0"])
def test_garbage_payloads_never_raise(envelope, path):
    for op, value in ALL_OPS:
        result = matches(cond(path, op, value), envelope)
        assert isinstance(result, bool)
    combined = {"or": [cond(path, op, value) for op, value in ALL_OPS]}
    assert isinstance(matches(combined, envelope), bool)


@pytest.mark.parametrize(
    ("envelope", "spec", "expected"),
    [
        ({"data": None}, cond("data", "eq", None), True),
        ({"data": None}, cond("data", "exists", True), True),
        ({"data": None}, cond("data.x", "exists", True), False),
        ({"data": None}, cond("data.x", "ne", 1), True),
        ({"data": [1, {"order": 5}]}, cond("data.1.order", "eq", 5), True),
        ({"data": "a string"}, cond("data.0", "exists", True), False),
        ("not a dict", cond("type", "exists", False), True),
        (None, cond("data", "nin", [1]), True),
    ],
)
def test_garbage_payload_semantics(envelope, spec, expected):
    assert matches(spec, envelope) is expected


def test_deeply_nested_values_compare_without_recursion():
    def deep(leaf, levels):
        for _ in range(levels):
            leaf = [leaf]
        return leaf

    predicate = compile_filter(cond("data.x", "eq", deep(1, 500)))
    assert predicate({"data": {"x": deep(1, 500)}}) is True
    assert predicate({"data": {"x": deep(2, 500)}}) is False
    assert predicate({"data": {"x": deep(1, 50_000)}}) is False


def test_matches_cache_uses_canonical_key():
    filters._compile_cached.cache_clear()
    a = {"path": "type", "op": "eq", "value": "order.created"}
    b = {"value": "order.created", "op": "eq", "path": "type"}
    assert matches(a, ENVELOPE) is True
    assert matches(b, ENVELOPE) is True
    info = filters._compile_cached.cache_info()
    assert (info.hits, info.misses) == (1, 1)
    assert info.maxsize == 1024


def test_compiled_filter_is_reusable():
    predicate = compile_filter(cond("data.order.amount", "gte", 100))
    assert predicate(ENVELOPE) is True
    assert predicate({"data": {"order": {"amount": 99}}}) is False
    assert predicate({}) is False


def test_module_imports_only_stdlib_and_re2():
    with open(filters.__file__, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {
        "__future__",
        "collections",
        "functools",
        "json",
        "operator",
        "typing",
        "re2",
    }
