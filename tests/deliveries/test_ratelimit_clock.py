"""The Redis token bucket keeps time by Redis's clock, not by each worker's.

Workers on several machines share one bucket; their clocks disagree. Against the real
Redis on 127.0.0.1:6379 (database 11, only this file's keys). Time passing is simulated
by moving the bucket's stored timestamp back, so no test sleeps.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries import ratelimit
from tests.factories import make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_URL = "redis://127.0.0.1:6379/11"
RATE = 10  # per second: a burst of 5, then one token every 100 ms
# 0.32 s of refill is 3.2 tokens: 3 whole ones, with room for the test's own run time.
REFILL_SECONDS, REFILLED = 0.32, 3


@pytest.fixture
def bucket(settings):
    """An endpoint limited to RATE/s, its bucket in Redis: (endpoint, client, bucket key)."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    settings.REDIS_URL = REDIS_URL
    ratelimit._redis_script.cache_clear()
    endpoint = make_endpoint(rate_limit_per_second=RATE)
    key = f"webhookhub:rate:{endpoint.pk}"
    client.delete(key)
    try:
        yield endpoint, client, key
    finally:
        client.delete(key)
        ratelimit._redis_script.cache_clear()


def granted(waits: list[float]) -> int:
    return waits.count(0.0)


def let_time_pass(client, key: str, seconds: float) -> None:
    """As if `seconds` went by since the bucket was last touched."""
    client.hincrbyfloat(key, "ts", -seconds)


@pytest.mark.parametrize("skew", [timedelta(hours=1), timedelta(hours=-1)])
def test_a_skewed_worker_clock_does_not_starve_the_others(bucket, skew):
    endpoint, client, key = bucket
    now = timezone.now()
    # A worker whose clock is off by an hour drains the bucket...
    assert granted(ratelimit.take(endpoint, 30, now=now + skew)) == 5  # the burst
    let_time_pass(client, key, REFILL_SECONDS)
    # ...and a worker with the right clock gets what the time since refilled, no more
    # and no fewer, whichever way the first one was off.
    assert granted(ratelimit.take(endpoint, 30, now=now)) == REFILLED


def test_two_skewed_workers_see_the_same_refill(bucket):
    endpoint, client, key = bucket
    now = timezone.now()
    ahead, behind = now + timedelta(minutes=10), now - timedelta(minutes=10)
    assert granted(ratelimit.take(endpoint, 30, now=ahead)) == 5  # the burst
    let_time_pass(client, key, REFILL_SECONDS)
    assert granted(ratelimit.take(endpoint, 30, now=behind)) == REFILLED
    let_time_pass(client, key, REFILL_SECONDS)
    assert granted(ratelimit.take(endpoint, 30, now=ahead)) == REFILLED


def test_a_worker_clock_ahead_does_not_refill_the_bucket_early(bucket):
    endpoint, _client, _key = bucket
    now = timezone.now()
    assert granted(ratelimit.take(endpoint, 30, now=now)) == 5  # the burst
    # An hour ahead by its own clock, but no time has passed for Redis: still empty.
    assert granted(ratelimit.take(endpoint, 30, now=now + timedelta(hours=1))) == 0
