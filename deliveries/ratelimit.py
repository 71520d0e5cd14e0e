"""Per-endpoint token buckets shared by every worker on every machine.

`rate_limit_per_second = r` lets a burst of half a second's worth (`r / 2`, at least 1)
through, then `r` per second: no one-second window ever sees more than `1.5 r`.
With `REDIS_URL` the bucket lives in Redis (one atomic Lua script per claim); otherwise
in the endpoint's health row, written only by the holder of its drain lease (one
claimer per endpoint at a time).
Deliveries over the limit are not attempted: they wait, without burning an attempt.
"""

from datetime import datetime
from functools import lru_cache

from django.conf import settings

from deliveries.health import bucket_store as health_store

# KEYS[1] bucket key; ARGV: rate, wanted, capacity. Returns {granted, tokens_left*1000}.
# The clock is Redis's own TIME, not the caller's: workers on machines whose clocks
# disagree share one bucket, and one running ahead would otherwise stamp the bucket in
# the future and starve the others (or, behind, refill it early). Calling TIME before a
# write is allowed since scripts replicate their effects (the only mode in Redis 7).
_TAKE_LUA = """
local rate = tonumber(ARGV[1])
local wanted = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local granted = math.min(wanted, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('EXPIRE', KEYS[1], 3600)
return {granted, math.floor(tokens * 1000)}
"""


@lru_cache(maxsize=1)
def _redis_script():
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    return client.register_script(_TAKE_LUA)


def burst(rate: float) -> float:
    """The bucket's capacity: half a second's worth of requests, at least one."""
    return max(1.0, rate / 2)


def take(endpoint, wanted: int, *, now: datetime, health=None) -> list[float]:
    """Take up to `wanted` tokens; return, per wanted request, seconds to wait (0 = go).

    Waits for the requests over the limit are spread at the bucket's rate, so they come
    back when a token should be there for each (they still compete for it then).
    `now` is the clock of the bucket in the health row (`health`, the endpoint's
    EndpointHealth, needed without Redis); a Redis bucket uses Redis's.
    """
    rate = float(endpoint.rate_limit_per_second or 0)
    if rate <= 0 or wanted <= 0:
        return [0.0] * wanted
    capacity = burst(rate)
    if settings.REDIS_URL:
        granted, left_milli = _redis_script()(
            keys=[f"webhookhub:rate:{endpoint.pk}"],
            args=[rate, wanted, capacity],
        )
        left = left_milli / 1000
    else:
        tokens = capacity if health.rate_tokens is None else health.rate_tokens
        if health.rate_checked_at is not None:
            elapsed = max(0.0, (now - health.rate_checked_at).total_seconds())
            tokens = min(capacity, tokens + elapsed * rate)
        granted = min(wanted, int(tokens))
        left = tokens - granted
        health.rate_tokens, health.rate_checked_at = left, now
        health_store(health)
    waits = [0.0] * granted
    waits += [(i + 1 - left) / rate for i in range(wanted - granted)]
    return waits
