"""Per-token request rates, one budget per scope (`publish`, `read`, `write`).

Rates come from `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]` (set from the environment,
see settings and `.env.example`) as `N/s`, `N/min`, `N/hour` or `N/day`. A fixed-window
counter per (token, scope, window) is one `incr` in the throttle cache per request —
cheap at thousands of requests a second, unlike DRF's list of timestamps. With Redis
configured the counters are shared by every web process; without it each process
counts for itself. Over the rate: 429 with `Retry-After` (seconds to the next window).
"""

import math
import time

from django.conf import settings
from django.core.cache import caches
from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from webhookhub.api.authentication import ApiClient

PERIODS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """`"100/min"` -> (100, 60)."""
    count, _, period = rate.partition("/")
    try:
        return int(count), PERIODS[period.strip().lower()]
    except (KeyError, ValueError):
        raise ValueError(
            f"Invalid throttle rate {rate!r}: use N/s, N/min, N/hour or N/day."
        ) from None


def scope_for(request, view) -> str:
    """The view's `throttle_scopes[action]`, else `read` for safe methods, `write` else."""
    scope = getattr(view, "throttle_scopes", {}).get(getattr(view, "action", None))
    if scope:
        return scope
    return "read" if request.method in SAFE_METHODS else "write"


class TokenRateThrottle(BaseThrottle):
    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request, view) -> bool:
        client = request.user
        if not isinstance(client, ApiClient):
            return True  # unauthenticated requests are refused before they cost anything
        scope = scope_for(request, view)
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(scope)
        if not rate:
            return True
        limit, period = parse_rate(rate)
        now = time.time()
        window = int(now // period)
        key = f"throttle:{scope}:{client.token.pk}:{window}"
        cache = caches[settings.WEBHOOKHUB_API_THROTTLE_CACHE]
        cache.add(key, 0, timeout=period + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=period + 1)
            count = 1
        if count <= limit:
            return True
        self._wait = max(1, math.ceil((window + 1) * period - now))
        return False

    def wait(self) -> float | None:
        return self._wait
