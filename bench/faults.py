"""Fault run: publishing at a steady rate while clusters are killed and PostgreSQL restarts.

    python bench/faults.py [--events 3000] [--rate 40] [--broker orm|redis]

3 partners × 2 endpoints; N events at R/s, each `with transaction.atomic(): publish()`
to one partner (round robin), so 2N deliveries; a receiver (in this process) that
answers 500 to 15 % of requests and takes 20 ms; two `manage.py qcluster`; the first
SIGKILLed (whole group) at 15 s and restarted 5 s later, the second at 35 s and 40 s;
PostgreSQL restarted (`pg_ctlcluster … restart`, fast mode) at 55 s. Then it waits for
every delivery to succeed (retries: fixed 1 s, 50 attempts) and SIGTERMs each cluster's
process group, timing the exit.

Reported: lost (not succeeded at the end) and stuck (in flight or waiting) deliveries;
"deadlock detected" in the cluster logs, in PostgreSQL's log since the start and in the
publisher; publish errors (a publish that fails on the restart is retried with the same
idempotency key); duplicates — a (webhook-id, endpoint) answered 2xx more than once —
split into those whose first 2xx answer was in progress at a fault (within 2 s of a kill
or the restart) and the others; how long publishing took; the SIGTERM exit times.
Results go to bench/results/faults-<UTC timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    DEFAULT_PG,
    DEFAULT_REDIS,
    LOGS,
    RESULTS,
    Cluster,
    base_env,
    broker_env,
    recreate_database,
    reset_queues,
    write_json,
)

DB_NAME = "webhookhub_bench_faults"
PG_LOG = Path("/var/log/postgresql")


class Log:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[str, int, float, float]] = []  # key, status, start, end


def make_receiver(log: Log, *, fail_share: float, delay: float) -> ThreadingHTTPServer:
    rng = random.Random(7)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            started = time.time()
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            time.sleep(delay)
            with log.lock:
                status = 500 if rng.random() < fail_share else 200
            body = b"ok" if status == 200 else b"boom"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            key = f"{self.path} {self.headers.get('webhook-id')}"
            with log.lock:
                log.requests.append((key, status, started, time.time()))

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # a killed cluster drops its connections: expected here

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def pg_restart() -> float:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    started = time.monotonic()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
    )
    for _ in range(60):
        if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode == 0:
            break
        time.sleep(0.5)
    return time.monotonic() - started


def pg_log_deadlocks(since: float) -> list[str]:
    found = []
    for path in PG_LOG.glob("postgresql-*-main.log"):
        if path.stat().st_mtime < since:
            continue
        for line in path.read_text(errors="replace").splitlines():
            if "deadlock detected" in line:
                stamp = line[:19]
                try:
                    at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
                except ValueError:
                    continue
                if at.timestamp() >= since - 1:
                    found.append(line[:200])
    return found


def sigterm_exit_seconds(cluster: Cluster) -> float:
    started = time.monotonic()
    os.killpg(cluster.pid, 15)
    try:
        cluster.process.wait(90)
    except subprocess.TimeoutExpired:
        cluster.kill()
        return float("inf")
    took = time.monotonic() - started
    cluster.kill()
    return took


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--broker", choices=("orm", "redis"), default="orm")
    parser.add_argument("--pg", default=DEFAULT_PG)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--no-pg-restart", action="store_true")
    parser.add_argument("--settle", type=float, default=240.0, help="wait for all, s")
    args = parser.parse_args(argv)

    from cryptography.fernet import Fernet

    env = broker_env(
        base_env(pg=args.pg, db_name=DB_NAME, fernet_key=Fernet.generate_key().decode()),
        args.broker,
        args.redis_url,
    )
    env["LOG_LEVEL"] = "WARNING"
    recreate_database(args.pg, DB_NAME, env)
    os.environ.update(env)
    import django

    django.setup()
    from django.db import close_old_connections, connection, transaction

    from deliveries.models import Delivery, DeliveryStatus
    from endpoints.services import endpoint_create, partner_create
    from events.models import EventType
    from events.services import publish

    reset_queues(args.redis_url if args.broker == "redis" else None)
    log = Log()
    server = make_receiver(log, fail_share=0.15, delay=0.02)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    EventType.objects.get_or_create(name="bench.event")
    partners = []
    for p in range(3):
        partner = partner_create(name=f"Fault partner {p}")
        for e in range(2):
            endpoint_create(
                partner,
                name=f"p{p}e{e}",
                url=f"{base}/p{p}/e{e}",
                event_types=["bench.event"],
                by="bench",
                retry_policy={"strategy": "fixed", "base_delay": 1, "jitter": 0,
                              "max_attempts": 50},
            )  # fmt: skip
        partners.append(partner)
    connection.close()

    LOGS.mkdir(parents=True, exist_ok=True)
    clusters = [Cluster(env, "faults-c1.log"), Cluster(env, "faults-c2.log")]
    time.sleep(4)
    started = time.time()
    t0 = time.monotonic()
    faults: list[tuple[str, float]] = []  # (what, time.time())
    publisher = {"errors": [], "deadlocks": 0, "done_at": None}

    def publish_all():
        for n in range(args.events):
            due = t0 + n / args.rate
            time.sleep(max(0.0, due - time.monotonic()))
            for attempt in range(60):
                try:
                    with transaction.atomic():
                        publish(
                            "bench.event",
                            {"n": n},
                            partner=partners[n % 3],
                            idempotency_key=f"fault-{n}",
                        )
                    break
                except Exception as exc:  # the restart; a deadlock would be counted here
                    text = str(exc)
                    publisher["errors"].append(text[:160])
                    publisher["deadlocks"] += "deadlock detected" in text
                    close_old_connections()
                    connection.close()
                    time.sleep(0.5 if attempt < 59 else 0)
        publisher["done_at"] = time.monotonic()
        connection.close()

    thread = threading.Thread(target=publish_all)
    thread.start()
    schedule = [(15, "kill c1"), (20, "start c1"), (35, "kill c2"), (40, "start c2")]
    if not args.no_pg_restart:
        schedule.append((55, "restart postgresql"))
    pg_restart_seconds = None
    for at, what in schedule:
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        index = 0 if "c1" in what else 1
        if what.startswith("kill"):
            faults.append((what, time.time()))
            clusters[index].kill()
        elif what.startswith("start"):
            clusters[index] = Cluster(env, f"faults-c{index + 1}-restarted.log")
        else:
            faults.append((what, time.time()))
            pg_restart_seconds = pg_restart()
            faults.append(("postgresql up", time.time()))
        print(f"{time.monotonic() - t0:6.1f}s {what}", flush=True)
    thread.join()
    publish_seconds = publisher["done_at"] - t0
    print(f"published {args.events} events in {publish_seconds:.1f}s", flush=True)

    expected = args.events * 2
    deadline = time.monotonic() + args.settle
    while time.monotonic() < deadline:
        try:
            done = Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count()
        except Exception:
            close_old_connections()
            connection.close()
            time.sleep(1)
            continue
        if done >= expected:
            break
        time.sleep(1)
    counts = defaultdict(int)
    for status in Delivery.objects.values_list("status", flat=True):
        counts[status] += 1
    connection.close()
    exits = [sigterm_exit_seconds(c) for c in clusters]

    with log.lock:
        requests = list(log.requests)
    first_ok: dict[str, tuple[float, float]] = {}
    oks = defaultdict(int)
    for key, status, start, end in sorted(requests, key=lambda r: r[2]):
        if status == 200:
            oks[key] += 1
            first_ok.setdefault(key, (start, end))
    fault_times = [t for _, t in faults]
    near, far = 0, 0
    for key, n in oks.items():
        if n < 2:
            continue
        start, end = first_ok[key]
        if any(start - 2 <= t and end + 2 >= t for t in fault_times) or (
            # the restart window: from going down to being up again
            len(faults) >= 2
            and faults[-2][0] == "restart postgresql"
            and faults[-2][1] - 2 <= end <= faults[-1][1] + 2
        ):
            near += n - 1
        else:
            far += n - 1
    cluster_deadlocks = []
    for path in LOGS.glob("faults-c*.log"):
        cluster_deadlocks += [
            line[:200]
            for line in path.read_text(errors="replace").splitlines()
            if "deadlock detected" in line
        ]
    result = {
        "broker": args.broker,
        "events": args.events,
        "rate": args.rate,
        "deliveries_expected": expected,
        "statuses": dict(counts),
        "lost": expected - counts.get("succeeded", 0),
        "stuck": counts.get("in_flight", 0) + counts.get("pending", 0) + counts.get("retrying", 0),
        "requests": len(requests),
        "failed_requests_500": sum(1 for r in requests if r[1] == 500),
        "duplicates_near_a_fault": near,
        "duplicates_elsewhere": far,
        "deadlocks_cluster_logs": cluster_deadlocks,
        "deadlocks_postgresql_log": pg_log_deadlocks(started),
        "publisher_deadlocks": publisher["deadlocks"],
        "publisher_errors": len(publisher["errors"]),
        "publisher_error_samples": publisher["errors"][:5],
        "publish_seconds": round(publish_seconds, 1),
        "pg_restart_seconds": pg_restart_seconds,
        "faults": [(what, round(t - started, 1)) for what, t in faults],
        "sigterm_exit_seconds": [round(x, 1) for x in exits],
    }
    server.shutdown()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"faults-{args.broker}-{stamp}.json"
    write_json(out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "publisher_error_samples"},
                     indent=1))  # fmt: skip
    print(f"results: {out}")
    return 0 if result["lost"] == 0 and not result["deadlocks_postgresql_log"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
