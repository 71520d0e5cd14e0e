"""How long to wait before a retry. Pure: values in, values out.

The rules the client follows: a 429 (and a 503) waits what the server's `Retry-After`
says; anything else retryable waits an exponential backoff with jitter, so that many
publishers failing at once do not come back in step.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable

MAX_BACKOFF_SECONDS = 30.0


def retry_after_seconds(value: str | None, *, now: float) -> float | None:
    """`Retry-After` as seconds from `now` (a unix time): delta-seconds or an HTTP date
    (RFC 9110 §10.2.3). None when absent or unreadable; never negative."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    seconds = when.timestamp() - now
    return max(0.0, seconds) if math.isfinite(seconds) else None


def backoff_delay(
    retry: int, base: float, *, random: Callable[[], float], cap: float = MAX_BACKOFF_SECONDS
) -> float:
    """Seconds before retry number `retry` (1 for the first): `base * 2**(retry-1)`, at
    most `cap`, scaled by a random factor in [0.5, 1) ("equal jitter")."""
    ceiling = min(cap, base * 2 ** (retry - 1))
    return ceiling * (0.5 + random() / 2)
