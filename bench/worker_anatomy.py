"""worker_anatomy: what one delivery task costs, measured in-process (no qcluster).

Diagnosis for the throughput numbers. Calls `deliveries.tasks.deliver(ids)` — the very
function a django-q2 worker runs — in this process, for one batch of
WEBHOOKHUB_DELIVERY_BATCH_SIZE deliveries to the bench receiver (0 ms), in two shapes:

* 1 endpoint:  a batch of 32 events to one endpoint
* N endpoints: one event fanned out to 32 endpoints

(rows written with events.services.event_publish(endpoint_ids=..., enqueue=False), so no
broker is involved). For each shape: median wall time of a task over --runs runs,
process CPU time (all threads), the time spent in the engine's stages (the functions
are wrapped here, in the bench process: claim, build_request, transport.send,
attempts_record and the endpoint-health step inside it), the SQL queries and COMMITs
of one task (CaptureQueriesContext) with their shapes, and a cProfile of the task's
main thread (claim + record; the HTTP sends run on the pool's threads).

python -m bench.worker_anatomy --receiver http://127.0.0.1:PORT --out x.json
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import pstats
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from bench.common import Receiver, django_setup, median, reset_data, reset_queues, write_json

STAGES = [
    ("deliveries.engine", "deliveries_claim", "claim"),
    ("deliveries.engine", "build_request", "build_request"),
    ("deliveries.engine", "attempts_record", "attempts_record"),
    ("deliveries.endpoint_health", "endpoints_after_attempts", "endpoint_health"),
    ("deliveries.engine", "ordered_release_next", "ordered_release_next"),
    ("deliveries.transport", "send", "transport.send"),
]


class StageTimer:
    """Wraps engine functions (in this process only) to sum their time and calls."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()
        self.installed = []

    def reset(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter = Counter()

    def install(self) -> None:
        import importlib

        for module_path, attr, label in STAGES:
            try:
                owner = importlib.import_module(module_path)
            except ImportError:
                continue
            original = getattr(owner, attr, None)
            if original is None:
                continue
            setattr(owner, attr, self._wrap(original, label))
            self.installed.append(label)

    def _wrap(self, func, label):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                with self.lock:
                    self.seconds[label] += elapsed
                    self.calls[label] += 1

        return wrapper


def run(args) -> dict:
    django_setup()
    from django.conf import settings
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from bench.publish_fanout import query_shape
    from deliveries import tasks
    from endpoints.services import endpoint_create, partner_create
    from events.models import EventType
    from events.services import event_publish

    receiver = Receiver(args.receiver)
    receiver.set_delay(0)
    reset_data()
    reset_queues(None)
    batch = settings.WEBHOOKHUB_DELIVERY_BATCH_SIZE
    EventType.objects.create(name="bench.event")
    partner = partner_create(name="bench-anatomy")
    from endpoints.models import Endpoint

    extra = {}
    if any(f.name == "max_in_flight" for f in Endpoint._meta.get_fields()):
        # The per-endpoint concurrency cap (default 10) would defer most of a batch to
        # one endpoint; this measures the cost of sending, not the cap.
        extra["max_in_flight"] = min(100, max(batch, 10))
    endpoints = [
        endpoint_create(
            partner,
            name=f"anatomy {i}",
            url=f"{receiver.base_url}/hook/a{i}",
            event_types=["*"],
            by="bench",
            **extra,
        )
        for i in range(1, batch + 1)
    ]
    timer = StageTimer()
    timer.install()
    counter = iter(range(10**9))

    def make_batch(shape: str) -> list[int]:
        from deliveries.models import Delivery

        with transaction.atomic():
            if shape == "1 endpoint":
                events = [
                    event_publish(
                        "bench.event",
                        {"n": next(counter)},
                        endpoint_ids=[endpoints[0].pk],
                        enqueue=False,
                    )[0]
                    for _ in range(batch)
                ]
            else:
                events = [
                    event_publish(
                        "bench.event",
                        {"n": next(counter)},
                        endpoint_ids=[e.pk for e in endpoints],
                        enqueue=False,
                    )[0]
                ]
        return list(
            Delivery.objects.filter(event__in=events).order_by("pk").values_list("pk", flat=True)
        )

    out = {
        "batch_size": batch,
        "send_concurrency": settings.WEBHOOKHUB_SEND_CONCURRENCY,
        "endpoint_fields": extra,
        "stages_wrapped": timer.installed,
        "shapes": {},
    }
    for shape in ("1 endpoint", f"{batch} endpoints"):
        tasks.deliver(make_batch(shape))  # warm-up: connections, thread pool, imports
        walls, cpus, stage_runs = [], [], []
        for _ in range(args.runs):
            ids = make_batch(shape)
            timer.reset()
            cpu0, t0 = time.process_time(), time.perf_counter()
            sent = tasks.deliver(ids)
            walls.append((time.perf_counter() - t0) * 1000)
            cpus.append((time.process_time() - cpu0) * 1000)
            assert sent == len(ids), (sent, len(ids))
            stage_runs.append({k: (v * 1000, timer.calls[k]) for k, v in timer.seconds.items()})
        ids = make_batch(shape)
        with CaptureQueriesContext(connection) as captured:
            tasks.deliver(ids)
        sqls = [q["sql"] for q in captured.captured_queries]
        shapes = Counter(query_shape(s) for s in sqls)
        ids = make_batch(shape)
        profiler = cProfile.Profile()
        profiler.enable()
        tasks.deliver(ids)
        profiler.disable()
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream)
        stats.sort_stats("cumulative").print_stats(r"deliveries/|django_q|psycopg/connection", 25)
        stages = {}
        for label in timer.installed:
            values = [r.get(label, (0.0, 0)) for r in stage_runs]
            stages[label] = {
                "median_ms": median([v[0] for v in values]),
                "median_calls": median([v[1] for v in values]),
            }
        out["shapes"][shape] = {
            "deliveries": len(ids),
            "runs": args.runs,
            "median_task_ms": median(walls),
            "median_task_cpu_ms": median(cpus),
            "per_delivery_ms": median(walls) / len(ids),
            "per_delivery_cpu_ms": median(cpus) / len(ids),
            "stages": stages,
            "queries": len(sqls),
            "commits": sum(1 for s in sqls if s.strip().upper() == "COMMIT"),
            "queries_per_delivery": len(sqls) / len(ids),
            "query_shapes": [{"count": c, "sql": s[:400]} for s, c in shapes.most_common()],
            "cprofile_main_thread": stream.getvalue().splitlines()[-40:],
        }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receiver", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    write_json(Path(args.out), run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
