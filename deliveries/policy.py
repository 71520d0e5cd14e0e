"""Webhook retry policy: when, and whether, to try a failed delivery again.

A delivery is tried once, then retried according to its endpoint's retry policy.
After attempt ``n`` (1-based) fails, :func:`next_delay` returns how long to wait
before attempt ``n + 1``, or ``None`` once ``n`` reaches ``max_attempts``, at which
point the delivery is ``dead``.

Default schedule after the first try: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
(8 attempts in total), then the delivery is dead.

The delay is computed in this order:

1. Base delay, by strategy:

   * ``schedule`` (default): the ``n``-th entry of ``schedule``; the last entry
     repeats if ``max_attempts`` exceeds ``len(schedule) + 1``.
   * ``exponential``: ``base_delay * 2 ** (n - 1)``.
   * ``linear``: ``base_delay * n``.
   * ``fixed``: ``base_delay``.

2. Jitter: multiplied by a random factor in ``1 ± jitter`` (default ±20 %).
3. Cap: at most ``max_delay`` (default 10 h), for every strategy.
4. Floors: after a timeout or an HTTP 429 the wait is at least 60 s, even if
   ``max_delay`` is lower. On a 429 or 503 with a valid ``Retry-After`` header
   (seconds or HTTP-date) the wait is at least ``Retry-After``, but never more
   than ``max_delay`` on that account.
5. The wait is never shorter than 1 s.

Limits checked by :meth:`RetryPolicy.from_dict`: ``max_attempts`` 1-50,
``base_delay`` 1 s-24 h, ``max_delay`` between ``base_delay`` and 7 days,
``jitter`` 0-0.5, ``schedule`` 1-50 entries of 1 s-7 days each. With the
``schedule`` strategy and no explicit ``max_attempts``, ``max_attempts`` is
``len(schedule) + 1`` (at most 50).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

# Django's choices enum and lazy text only: values, no model and no query.
from django.db.models import TextChoices
from django.utils.translation import gettext_lazy as _

DEFAULT_SCHEDULE: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)  # seconds
STRATEGIES = ("exponential", "linear", "fixed", "schedule")
MAX_ATTEMPTS_LIMIT = 50
THROTTLE_FLOOR = 60.0  # seconds, after a timeout or a 429
MIN_DELAY = 1.0  # seconds
_INT_RE = re.compile(r"[+-]?\d+")


class PolicyError(ValueError):
    """An invalid retry policy; ``field`` is the dotted path of the bad value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class AttemptResult(Protocol):
    status_code: int | None
    error_kind: str | None
    headers: Mapping[str, str]


@dataclass(frozen=True)
class RetryPolicy:
    strategy: str = "schedule"
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    max_attempts: int = 1 + len(DEFAULT_SCHEDULE)  # total, including the first try
    base_delay: float = 5.0
    max_delay: float = 36000.0
    jitter: float = 0.2

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | None, *, field: str = "retry_policy"
    ) -> RetryPolicy:
        """Build a validated policy from JSON-like data; absent keys take defaults."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise PolicyError(field, "must be an object")
        for key in data:
            if key not in _FIELDS:
                raise PolicyError(f"{field}.{key}", f"unknown setting {key!r}")
        strategy = data.get("strategy", cls.strategy)
        if strategy not in STRATEGIES:
            raise PolicyError(f"{field}.strategy", f"must be one of {', '.join(STRATEGIES)}")
        schedule = cls.schedule
        if "schedule" in data:
            raw = data["schedule"]
            if not isinstance(raw, list | tuple) or not 1 <= len(raw) <= MAX_ATTEMPTS_LIMIT:
                raise PolicyError(
                    f"{field}.schedule", f"must be a list of 1 to {MAX_ATTEMPTS_LIMIT} delays"
                )
            for i, item in enumerate(raw):
                _number(item, f"{field}.schedule[{i}]", 1, 604800)
            schedule = tuple(raw)
        if "max_attempts" in data:
            max_attempts = data["max_attempts"]
            if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
                raise PolicyError(f"{field}.max_attempts", "must be an integer")
            if not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
                raise PolicyError(
                    f"{field}.max_attempts", f"must be between 1 and {MAX_ATTEMPTS_LIMIT}"
                )
        elif strategy == "schedule":
            max_attempts = min(len(schedule) + 1, MAX_ATTEMPTS_LIMIT)
        else:
            max_attempts = cls.max_attempts
        base_delay = _number(
            data.get("base_delay", cls.base_delay), f"{field}.base_delay", 1, 86400
        )
        max_delay = _number(data.get("max_delay", cls.max_delay), f"{field}.max_delay", 1, 604800)
        if max_delay < base_delay:
            raise PolicyError(
                f"{field}.max_delay",
                f"must be at least base_delay ({base_delay:g}), got {max_delay:g}",
            )
        jitter = _number(data.get("jitter", cls.jitter), f"{field}.jitter", 0, 0.5)
        return cls(
            strategy, schedule, max_attempts, float(base_delay), float(max_delay), float(jitter)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form; ``from_dict(p.to_dict()) == p``."""
        data = asdict(self)
        data["schedule"] = list(self.schedule)
        return data


_FIELDS = frozenset(RetryPolicy.__dataclass_fields__)


def _number(value: Any, field: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(field, "must be a number")
    if not low <= value <= high:  # also rejects NaN and infinity
        raise PolicyError(field, f"must be between {low:g} and {high:g}, got {value!r}")
    return value


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or HTTP-date).

    Returns None when absent or unparseable; values in the past or negative give 0.
    """
    if value is None:
        return None
    value = value.strip()
    if _INT_RE.fullmatch(value):
        return float(max(0, int(value)))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def next_delay(
    policy: RetryPolicy,
    attempt_no: int,
    result: AttemptResult,
    *,
    now: datetime,
    rand: Callable[[], float] = random.random,
) -> timedelta | None:
    """Wait before the attempt after ``attempt_no`` (1-based) failed; None if dead."""
    if attempt_no < 1:
        raise ValueError("attempt_no is 1-based")
    if attempt_no >= policy.max_attempts:
        return None
    if policy.strategy == "schedule":
        delay = float(policy.schedule[min(attempt_no, len(policy.schedule)) - 1])
    elif policy.strategy == "exponential":
        delay = policy.base_delay * 2.0 ** min(attempt_no - 1, 64)
    elif policy.strategy == "linear":
        delay = policy.base_delay * attempt_no
    elif policy.strategy == "fixed":
        delay = policy.base_delay
    else:
        raise ValueError(f"unknown retry strategy {policy.strategy!r}")
    delay *= 1 + policy.jitter * (2 * rand() - 1)
    delay = min(delay, policy.max_delay)
    status = getattr(result, "status_code", None)
    if status == 429 or getattr(result, "error_kind", None) == "timeout":
        delay = max(delay, THROTTLE_FLOOR)
    if status in (429, 503):
        retry_after = parse_retry_after(
            _header(getattr(result, "headers", None), "Retry-After"), now=now
        )
        if retry_after is not None:
            delay = max(delay, min(retry_after, policy.max_delay))
    return timedelta(seconds=max(delay, MIN_DELAY))


# --- Circuit breaker math -------------------------------------------------------------
# After `threshold` consecutive failed attempts an endpoint's circuit opens: deliveries
# wait without being attempted. After a cooldown one probe goes out; its success closes
# the circuit, its failure re-opens it with a cooldown twice as long (capped).


class CircuitState(TextChoices):
    CLOSED = "closed", _("Closed (delivering)")
    OPEN = "open", _("Open (waiting to probe)")
    HALF_OPEN = "half_open", _("Half-open (probe in flight)")


@dataclass(frozen=True)
class CircuitPolicy:
    threshold: int = 5
    cooldown: float = 60.0  # seconds before the first probe
    max_cooldown: float = 3600.0  # seconds; the cooldown doubles per re-open up to this
    disable_after: float = 5 * 86400.0  # seconds of continuous failure before auto-disable


def circuit_should_open(consecutive_failures: int, policy: CircuitPolicy) -> bool:
    return consecutive_failures >= policy.threshold


def circuit_cooldown(open_count: int, policy: CircuitPolicy) -> timedelta:
    """Wait before the probe after the circuit opened for the `open_count`-th time in a row."""
    seconds = policy.cooldown * 2.0 ** min(max(open_count, 1) - 1, 32)
    return timedelta(seconds=min(seconds, policy.max_cooldown))


def should_auto_disable(
    failing_since: datetime | None, now: datetime, policy: CircuitPolicy
) -> bool:
    """True once an endpoint has failed without a single success for the whole window."""
    return (
        failing_since is not None and (now - failing_since).total_seconds() >= policy.disable_after
    )


# Warnings before the switch-off: percent of the auto-disable window a failure streak
# has lasted when its partner and the staff are warned (each stage once per streak).
WARNING_STAGES: tuple[int, ...] = (50, 75, 90)


def warning_stage(failing_since: datetime | None, now: datetime, policy: CircuitPolicy) -> int:
    """The highest warning stage a streak that began at `failing_since` has reached
    (0: none yet). A streak past the whole window stays at the last stage."""
    if failing_since is None or policy.disable_after <= 0:
        return 0
    percent = 100 * (now - failing_since).total_seconds() / policy.disable_after
    return max((stage for stage in WARNING_STAGES if percent >= stage), default=0)
