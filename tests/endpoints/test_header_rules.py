"""One rule for custom header names and values (RFC 9110) and for the bearer token, one
protected-header list for validation and transport, and one mask."""

import pytest
from django.core.exceptions import ValidationError

from deliveries.transport import compose_headers
from endpoints import header_rules
from endpoints.header_rules import ValueProblem, keep_masked, mask_value, masked, value_problem
from endpoints.validation import validate_auth_token, validate_headers

HOP_BY_HOP = (
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "proxy-authorization",
    "proxy-connection",
)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", None),
        ("plain", None),
        ("Bearer abc.def~ghi/+=", None),
        ("inner space\tand tab", None),
        ("!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", None),
        ("a\x00b", (ValueProblem.CONTROL, "U+0000")),
        ("a\x01b", (ValueProblem.CONTROL, "U+0001")),
        ("a\x0bb", (ValueProblem.CONTROL, "U+000B")),
        ("a\x0cb", (ValueProblem.CONTROL, "U+000C")),
        ("a\rb", (ValueProblem.CONTROL, "U+000D")),
        ("a\nb", (ValueProblem.CONTROL, "U+000A")),
        ("a\x7fb", (ValueProblem.CONTROL, "U+007F")),
        ("a\x85b", (ValueProblem.CONTROL, "U+0085")),  # NEL
        ("caf\xe9", (ValueProblem.NOT_ASCII, "U+00E9")),  # Latin-1, still not ASCII
        ("\ud55c\uad6d", (ValueProblem.NOT_ASCII, "U+D55C")),
        ("a\u2028b", (ValueProblem.NOT_ASCII, "U+2028")),
        (" lead", (ValueProblem.EDGE_WHITESPACE, "")),
        ("trail ", (ValueProblem.EDGE_WHITESPACE, "")),
        ("\ttab", (ValueProblem.EDGE_WHITESPACE, "")),
        (" ", (ValueProblem.EDGE_WHITESPACE, "")),
        ("x" * 1001, (ValueProblem.TOO_LONG, "")),
        (5, (ValueProblem.NOT_TEXT, "")),
    ],
)
def test_header_value_rule(value, problem):
    assert value_problem(value) == problem


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("hunter2-long-secret-value", "••••alue"),
        ("123456789012", "••••9012"),
        ("12345678901", "••••"),
        ("", "••••"),
    ],
)
def test_mask_keeps_the_last_four_of_long_values_only(value, shown):
    assert mask_value(value) == shown


def test_a_masked_value_sent_back_keeps_the_current_one():
    current = {"X-Password": "hunter2-long-secret-value", "X-Short": "abc", "X-Gone": "x" * 20}
    sent = {**masked(current), "X-Short": "new", "X-New": "v"}
    del sent["X-Gone"]
    assert keep_masked(sent, current) == {
        "X-Password": "hunter2-long-secret-value",
        "X-Short": "new",
        "X-New": "v",
    }
    assert keep_masked({"x-password": "••••alue"}, current) == {
        "x-password": "hunter2-long-secret-value"
    }, "header names ignore case"
    # A mask that is not the current value's stays as it is (and is refused below).
    assert keep_masked({"X-Password": "••••nope"}, current) == {"X-Password": "••••nope"}
    assert keep_masked({"X-New": "••••"}, current) == {"X-New": "••••"}


@pytest.mark.parametrize("name", [*HOP_BY_HOP, "Keep-Alive", "TE", "Proxy-Authorization"])
def test_hop_by_hop_headers_are_refused_when_saved(name):
    with pytest.raises(ValidationError) as exc:
        validate_headers({name: "x"})
    assert exc.value.message_dict == {
        "headers": [f"{name} is set by webhookhub and cannot be overridden."]
    }


def test_what_the_transport_would_drop_is_refused_when_saved():
    """One list: a header that passes validation is sent, never dropped silently."""
    names = [
        *HOP_BY_HOP,
        *header_rules.PROTECTED_HEADERS,
        "webhook-id",
        "Webhook-Anything",
        "X-Tenant",
        "X-Password",
        "Cookie",
    ]
    for name in names:
        composed = compose_headers(signed={}, custom={name: "v"}, bearer_token=None)
        sent = composed.get(name) == "v"
        try:
            validate_headers({name: "v"})
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == sent, name


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({"X-Password": "ab\x01cd"}, "The value of X-Password contains a control character (U+0001)"),
        ({"X-Password": "ab\x85cd"}, "The value of X-Password contains a control character (U+0085)"),
        ({"X-Password": "ab\u00e9"}, "The value of X-Password contains U+00E9, which is not ASCII"),
        ({"X-Password": " padded"}, "The value of X-Password starts or ends with whitespace"),
        ({"X-Password": "x" * 1001}, "The value of X-Password is longer than 1000 characters"),
        ({"X-A": "1", "x-a": "2"}, "x-a is given twice"),
        ({"X-Bad\n": "1"}, "is not a valid header name"),
        ({"X-Password": "••••alue"}, "The value of X-Password is masked"),
    ],
)  # fmt: skip
def test_bad_headers_are_refused_with_a_message_naming_the_header(headers, words):
    with pytest.raises(ValidationError) as exc:
        validate_headers(headers)
    assert list(exc.value.message_dict) == ["headers"]
    assert words in exc.value.message_dict["headers"][0]


def test_masked_values_may_pass_before_the_stored_value_is_put_back():
    validate_headers({"X-Password": "••••alue", "X-Short": "••••"}, allow_masked=True)
    with pytest.raises(ValidationError):
        validate_headers({"X-Password": "••••alue\x01"}, allow_masked=True)


@pytest.mark.parametrize("token", ["tok\x01en", "tok\x0ben", "tok\x0cen", "tok\x85en", "tok\u00e9n",
                                   "\ud55c", " token", "token ", "line\r\nbreak"])  # fmt: skip
def test_bearer_token_follows_the_same_rule(token):
    with pytest.raises(ValidationError) as exc:
        validate_auth_token(token)
    assert list(exc.value.message_dict) == ["auth_token"]
    assert "The value of Authorization (auth_token)" in exc.value.message_dict["auth_token"][0]


def test_bearer_token_accepts_any_visible_ascii_and_empty_means_none():
    validate_auth_token("")
    validate_auth_token("tok_abc-DEF.123~+/=")
