import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from deliveries.policy import (
    DEFAULT_SCHEDULE,
    PolicyError,
    RetryPolicy,
    next_delay,
    parse_retry_after,
)

NOW = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
MID = lambda: 0.5  # noqa: E731  (jitter factor exactly 1)


@dataclass
class Result:
    status_code: int | None = 500
    error_kind: str | None = "http_status"
    headers: dict[str, str] = field(default_factory=dict)


def delay(policy, attempt_no, result=None, rand=MID):
    got = next_delay(policy, attempt_no, result or Result(), now=NOW, rand=rand)
    return None if got is None else got.total_seconds()


@pytest.mark.parametrize(
    ("attempt_no", "expected"),
    [(1, 5), (2, 300), (3, 1800), (4, 7200), (5, 18000), (6, 36000), (7, 36000), (8, None)],
)
def test_default_schedule(attempt_no, expected):
    assert delay(RetryPolicy(), attempt_no) == expected
    assert delay(RetryPolicy.from_dict(None), attempt_no) == expected
    assert delay(RetryPolicy.from_dict({}), attempt_no) == expected


def test_defaults():
    p = RetryPolicy()
    assert p.max_attempts == 1 + len(DEFAULT_SCHEDULE) == 8
    assert (p.strategy, p.base_delay, p.max_delay, p.jitter) == ("schedule", 5.0, 36000.0, 0.2)


@pytest.mark.parametrize(
    ("rand", "expected"),
    [(lambda: 0.0, 240.0), (lambda: 1.0, 360.0), (lambda: 0.25, 270.0), (lambda: 0.75, 330.0)],
)
def test_jitter_bounds(rand, expected):
    assert delay(RetryPolicy(), 2, rand=rand) == pytest.approx(expected)


def test_jitter_stays_within_bounds_with_real_random():
    for _ in range(200):
        assert 240 <= next_delay(RetryPolicy(), 2, Result(), now=NOW).total_seconds() <= 360


def test_jitter_upper_bound_still_capped():
    assert delay(RetryPolicy(), 6, rand=lambda: 1.0) == 36000


@pytest.mark.parametrize(
    ("strategy", "delays"),
    [
        ("exponential", [10, 20, 40, 80, 160]),
        ("linear", [10, 20, 30, 40, 50]),
        ("fixed", [10, 10, 10, 10, 10]),
        ("schedule", [1, 2, 3, 3, 3]),  # last entry repeats
    ],
)
def test_strategies(strategy, delays):
    p = RetryPolicy.from_dict(
        {"strategy": strategy, "base_delay": 10, "schedule": [1, 2, 3], "max_attempts": 6}
    )
    assert [delay(p, n) for n in range(1, 7)] == [*delays, None]


@pytest.mark.parametrize(
    ("strategy", "attempt_no", "expected"),
    [("exponential", 10, 100), ("linear", 20, 100), ("fixed", 1, 100), ("schedule", 1, 100)],
)
def test_cap_at_max_delay(strategy, attempt_no, expected):
    p = RetryPolicy(
        strategy=strategy, schedule=(500,), base_delay=100, max_delay=100, max_attempts=50
    )
    assert delay(p, attempt_no, rand=lambda: 1.0) == expected


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (Result(429, "http_status"), 60),
        (Result(None, "timeout"), 60),
        (Result(503, "http_status"), 5),
        (Result(500, "http_status"), 5),
        (Result(None, "connection"), 5),
    ],
)
def test_throttle_floor(result, expected):
    assert delay(RetryPolicy(), 1, result) == expected


def test_throttle_floor_beats_low_max_delay():
    p = RetryPolicy(strategy="fixed", base_delay=1, max_delay=10)
    assert delay(p, 1, Result(429)) == 60


def test_floor_does_not_shorten_longer_delays():
    assert delay(RetryPolicy(), 3, Result(429)) == 1800


HTTP_DATE = "Mon, 01 Jan 2024 12:02:00 GMT"  # NOW + 120 s


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (429, {"Retry-After": "120"}, 120),
        (503, {"Retry-After": "120"}, 120),
        (503, {"retry-after": "120"}, 120),
        (503, {"RETRY-AFTER": HTTP_DATE}, 120),
        (429, {"Retry-After": HTTP_DATE}, 120),
        (503, {"Retry-After": "999999"}, 36000),  # capped at max_delay
        (429, {"Retry-After": "30"}, 60),  # 429 floor still applies
        (503, {"Retry-After": "1"}, 5),  # never shortens the policy delay
        (500, {"Retry-After": "120"}, 5),  # ignored on 500
        (200, {"Retry-After": "120"}, 5),
        (503, {"Retry-After": "soon"}, 5),  # garbage ignored
        (429, {"Retry-After": "soon"}, 60),
        (503, {"Retry-After": ""}, 5),
        (503, {"Retry-After": "1.5e9"}, 5),
        (503, {"Retry-After": "Mon, 01 Jan 2024 11:00:00 GMT"}, 5),  # in the past
    ],
)
def test_retry_after(status, headers, expected):
    assert delay(RetryPolicy(), 1, Result(status, "http_status", headers)) == expected


def test_retry_after_capped_at_custom_max_delay():
    p = RetryPolicy(strategy="fixed", base_delay=5, max_delay=90)
    assert delay(p, 1, Result(503, headers={"Retry-After": "3600"})) == 90


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("soon", None),
        ("12.5", None),
        ("Mon, 99 Foo 2024 xx:yy:zz GMT", None),
        ("0", 0.0),
        ("120", 120.0),
        (" 120 ", 120.0),
        ("-5", 0.0),
        (HTTP_DATE, 120.0),
        ("Mon, 01 Jan 2024 11:59:00 GMT", 0.0),
        ("Mon, 01 Jan 2024 12:02:00 -0000", 120.0),
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, now=NOW) == expected


def test_max_attempts_one_is_dead_at_once():
    assert delay(RetryPolicy.from_dict({"max_attempts": 1}), 1) is None


def test_exhausted_beyond_max_attempts():
    assert delay(RetryPolicy(max_attempts=3), 3) is None
    assert delay(RetryPolicy(max_attempts=3), 9) is None


def test_attempt_no_is_one_based():
    with pytest.raises(ValueError):
        next_delay(RetryPolicy(), 0, Result(), now=NOW)


def test_minimum_one_second():
    p = RetryPolicy(strategy="fixed", base_delay=1, max_delay=1, jitter=0.5)
    assert delay(p, 1, rand=lambda: 0.0) == 1


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"strategy": "random"}, "retry_policy.strategy"),
        ({"strategy": None}, "retry_policy.strategy"),
        ({"max_attempts": 0}, "retry_policy.max_attempts"),
        ({"max_attempts": 51}, "retry_policy.max_attempts"),
        ({"max_attempts": True}, "retry_policy.max_attempts"),
        ({"max_attempts": 3.0}, "retry_policy.max_attempts"),
        ({"max_attempts": "3"}, "retry_policy.max_attempts"),
        ({"base_delay": 0.5}, "retry_policy.base_delay"),
        ({"base_delay": 86401}, "retry_policy.base_delay"),
        ({"base_delay": "5"}, "retry_policy.base_delay"),
        ({"base_delay": False}, "retry_policy.base_delay"),
        ({"base_delay": float("nan")}, "retry_policy.base_delay"),
        ({"max_delay": 604801}, "retry_policy.max_delay"),
        ({"max_delay": float("inf")}, "retry_policy.max_delay"),
        ({"base_delay": 100, "max_delay": 50}, "retry_policy.max_delay"),
        ({"base_delay": 86400}, "retry_policy.max_delay"),  # default max_delay < base_delay
        ({"max_delay": None}, "retry_policy.max_delay"),
        ({"jitter": -0.1}, "retry_policy.jitter"),
        ({"jitter": 0.51}, "retry_policy.jitter"),
        ({"jitter": "0.2"}, "retry_policy.jitter"),
        ({"schedule": []}, "retry_policy.schedule"),
        ({"schedule": "5,10"}, "retry_policy.schedule"),
        ({"schedule": [5] * 51}, "retry_policy.schedule"),
        ({"schedule": [5, 0]}, "retry_policy.schedule[1]"),
        ({"schedule": [5, 604801]}, "retry_policy.schedule[1]"),
        ({"schedule": [5, "10"]}, "retry_policy.schedule[1]"),
        ({"schedule": [True]}, "retry_policy.schedule[0]"),
        ({"backoff": 2}, "retry_policy.backoff"),
    ],
)
def test_validation_errors(data, field):
    with pytest.raises(PolicyError) as exc:
        RetryPolicy.from_dict(data)
    assert exc.value.field == field
    assert field in str(exc.value)


def test_validation_not_an_object():
    with pytest.raises(PolicyError) as exc:
        RetryPolicy.from_dict(["fixed"])  # type: ignore[arg-type]
    assert exc.value.field == "retry_policy"


def test_validation_custom_field_prefix():
    with pytest.raises(PolicyError) as exc:
        RetryPolicy.from_dict({"jitter": 1}, field="endpoints[3].retry_policy")
    assert exc.value.field == "endpoints[3].retry_policy.jitter"
    assert isinstance(exc.value, ValueError)


@pytest.mark.parametrize(
    ("data", "max_attempts"),
    [
        ({"schedule": [10, 20]}, 3),
        ({"strategy": "schedule", "schedule": [10] * 50}, 50),  # clamped to the limit
        ({"schedule": [10, 20], "max_attempts": 10}, 10),
        ({"strategy": "fixed", "schedule": [10, 20]}, 8),
        ({"strategy": "linear"}, 8),
    ],
)
def test_max_attempts_derivation(data, max_attempts):
    assert RetryPolicy.from_dict(data).max_attempts == max_attempts


@pytest.mark.parametrize(
    "policy",
    [
        RetryPolicy(),
        RetryPolicy.from_dict({"strategy": "exponential", "base_delay": 2, "max_delay": 600}),
        RetryPolicy.from_dict({"strategy": "linear", "max_attempts": 3, "jitter": 0}),
        RetryPolicy.from_dict({"strategy": "fixed", "base_delay": 30.5, "jitter": 0.5}),
        RetryPolicy.from_dict({"schedule": [1, 2.5, 60], "max_attempts": 20}),
    ],
)
def test_round_trip(policy):
    data = json.loads(json.dumps(policy.to_dict()))
    assert RetryPolicy.from_dict(data) == policy
    assert RetryPolicy.from_dict(data).to_dict() == data


def test_next_delay_returns_timedelta():
    assert next_delay(RetryPolicy(), 1, Result(), now=NOW, rand=MID) == timedelta(seconds=5)
