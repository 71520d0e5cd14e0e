"""publish_fanout: the cost of one `publish()` fanned out to 1, 100, 1,000 endpoints.

Runs in its own process (Django configured for one broker by the environment). For each
fan-out size it creates that many enabled endpoints subscribed to `*`, then times
`with transaction.atomic(): publish(...)` (warm-up runs first, then --runs timed runs):

* publish_ms  the `publish()` call itself (rows written inside the transaction)
* commit_ms   COMMIT (until the first on_commit callback runs)
* enqueue_ms  the on_commit hand-off to the broker (async_task per batch of deliveries)
* total_ms    the whole block: publish + commit + enqueue

One more run under `CaptureQueriesContext` counts the SQL queries (kept out of the
timed runs: capturing slows the database layer down) and lists their distinct shapes
(literals replaced by ?, multi-row VALUES folded). With the Redis broker it also counts
the TCP connections Redis accepted during that run (INFO total_connections_received).

Run via bench/run.py (`--only fanout`); standalone:
    python -m bench.publish_fanout --broker orm --out /tmp/fanout.json
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path

from bench.common import django_setup, median, reset_data, reset_queues, write_json

_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w\"])-?\d+(?:\.\d+)?(?![\w\"])")
_IN_LIST = re.compile(r"IN \((?:\?|NULL)(?:, (?:\?|NULL))*\)")
_VALUES = re.compile(r"VALUES (\([^()]*\))((?:, \([^()]*\))*)")
_SAVEPOINT = re.compile(r'"s\d+_x\d+"')


def query_shape(sql: str) -> str:
    shape = _SAVEPOINT.sub('"s…"', sql)
    shape = _STRING.sub("?", shape)
    shape = _NUMBER.sub("?", shape)
    shape = _IN_LIST.sub("IN (…)", shape)

    def fold(match: re.Match) -> str:
        rows = 1 + match.group(2).count("), (")
        return f"VALUES {match.group(1)} ×{rows} rows" if rows > 1 else match.group(0)

    return _VALUES.sub(fold, shape)


def redis_connections(redis_url: str) -> int | None:
    import redis

    try:
        client = redis.from_url(redis_url)
        value = client.info("stats")["total_connections_received"]
        client.close()
        return value
    except Exception:
        return None


def run(args) -> dict:
    django_setup()
    from django.conf import settings
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from deliveries.dispatch import _per_task
    from endpoints.services import endpoint_create, partner_create
    from events.models import EventType
    from events.services import publish

    redis_url = settings.REDIS_URL or None
    reset_data()
    reset_queues(redis_url)
    EventType.objects.create(name="bench.event", description="benchmark")
    partner = partner_create(name="bench-fanout")
    endpoints = 0

    def one_publish(i: int) -> dict:
        marks = {}
        started = time.perf_counter()
        with transaction.atomic():
            transaction.on_commit(lambda: marks.setdefault("committed", time.perf_counter()))
            before = time.perf_counter()
            event = publish("bench.event", {"n": i, "note": "fan-out benchmark"})
            marks["published"] = time.perf_counter()
        ended = time.perf_counter()
        return {
            "deliveries": event.deliveries_count,
            "publish_ms": (marks["published"] - before) * 1000,
            "commit_ms": (marks["committed"] - marks["published"]) * 1000,
            "enqueue_ms": (ended - marks["committed"]) * 1000,
            "total_ms": (ended - started) * 1000,
        }

    def clear_queue() -> None:
        reset_queues(redis_url)

    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    counter = 0
    for size in sizes:
        setup_started = time.monotonic()
        while endpoints < size:
            endpoints += 1
            endpoint_create(
                partner,
                name=f"bench endpoint {endpoints}",
                url=args.url,
                event_types=["*"],
                by="bench",
            )
        setup_s = time.monotonic() - setup_started
        runs = []
        for i in range(args.warmup + args.runs):
            counter += 1
            sample = one_publish(counter)
            clear_queue()
            if i >= args.warmup:
                runs.append(sample)
        assert all(r["deliveries"] == size for r in runs), runs
        # Query count and shapes: one separate run under CaptureQueriesContext.
        counter += 1
        conns_before = redis_connections(redis_url) if redis_url else None
        with CaptureQueriesContext(connection) as captured:
            captured_sample = one_publish(counter)
        conns_after = redis_connections(redis_url) if redis_url else None
        clear_queue()
        shapes = Counter(query_shape(q["sql"]) for q in captured.captured_queries)
        results.append(
            {
                "endpoints": size,
                "runs": len(runs),
                "endpoint_setup_s": round(setup_s, 2),
                "deliveries": size,
                "median_publish_ms": median([r["publish_ms"] for r in runs]),
                "median_commit_ms": median([r["commit_ms"] for r in runs]),
                "median_enqueue_ms": median([r["enqueue_ms"] for r in runs]),
                "median_total_ms": median([r["total_ms"] for r in runs]),
                "min_total_ms": min(r["total_ms"] for r in runs),
                "max_total_ms": max(r["total_ms"] for r in runs),
                "queries": len(captured.captured_queries),
                "captured_run_total_ms": captured_sample["total_ms"],
                "redis_connections_opened": (
                    None
                    if conns_before is None or conns_after is None
                    # minus the INFO connection of the "after" probe itself
                    else conns_after - conns_before - 1
                ),
                "tasks_enqueued": -(-size // _per_task(size)),
                "query_shapes": [
                    {"count": count, "sql": shape[:600]} for shape, count in shapes.most_common()
                ],
                "samples": runs,
            }
        )
    return {
        "broker": "redis" if redis_url else "orm",
        "batch_size": getattr(settings, "WEBHOOKHUB_DELIVERY_BATCH_SIZE", None),
        "results": results,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--sizes", default="1,100,1000")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--url", default="http://127.0.0.1:9/hook", help="endpoint URL")
    args = parser.parse_args(argv)
    write_json(Path(args.out), run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
