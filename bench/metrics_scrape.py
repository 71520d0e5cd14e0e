"""How long a /metrics scrape takes with a big deliveries table (PostgreSQL only).

    python bench/metrics_scrape.py postgres://postgres@127.0.0.1:5432/webhookhub_bench_ops

Migrates the database, bulk-loads ROWS deliveries (once: a second run reuses them) with
a realistic mix — mostly succeeded, some dead, retrying, cancelled, in flight, and a
due backlog above the 10,000-row count cap so the estimate path is exercised — then
starts gunicorn (2 workers, multiprocess metrics, state-gauge cache off) and times
SCRAPES scrapes of /metrics from a client on the same machine. Prints JSON.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url")
    parser.add_argument("--rows", type=int, default=1_000_000, help="deliveries to load")
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    metrics_dir = tempfile.mkdtemp(prefix="webhookhub-metrics-")
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-" + "x" * 40),
        "WEBHOOKHUB_ENCRYPTION_KEY": os.environ.get(
            "WEBHOOKHUB_ENCRYPTION_KEY", "YmVuY2gtb25seS1rZXktYmVuY2gtb25seS1rZXktMTI="
        ),
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        "WEBHOOKHUB_METRICS_CACHE_SECONDS": "0",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        "REDIS_URL": "",
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    load = subprocess.run(
        [*manage, "shell", "-c", LOADER.replace("ROWS", str(args.rows))],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    print(load.stdout.strip(), file=sys.stderr)
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "webhookhub.wsgi", "--bind",
         f"127.0.0.1:{args.port}", "--workers", "2"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{args.port}/metrics"
        for _ in range(100):
            try:
                requests.get(url, timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        for _ in range(10):  # warm both workers' connections
            requests.get(url, timeout=5)
        timings, collect = [], []
        for _ in range(args.scrapes):
            started = time.perf_counter()
            response = requests.get(url, timeout=10)
            timings.append(1000 * (time.perf_counter() - started))
            response.raise_for_status()
            for line in response.text.splitlines():
                if line.startswith("webhookhub_metrics_collect_seconds "):
                    collect.append(1000 * float(line.split()[1]))
        timings.sort()
        result = {
            "deliveries": args.rows,
            "scrapes": len(timings),
            "scrape_ms": {
                "p50": round(statistics.median(timings), 1),
                "p95": round(timings[int(0.95 * len(timings)) - 1], 1),
                "max": round(timings[-1], 1),
            },
            "state_gauges_ms": {
                "p50": round(statistics.median(collect), 1),
                "max": round(max(collect), 1),
            },
            "sample": [
                line
                for line in response.text.splitlines()
                if line.startswith(("webhookhub_deliveries", "webhookhub_dead_letters"))
            ],
        }
        print(json.dumps(result, indent=2))
    finally:
        web.terminate()
        web.wait(10)
    return 0


LOADER = r"""
from django.db import connection
from deliveries.models import Delivery
from endpoints.models import Endpoint
from endpoints.services import endpoint_create, partner_create
from endpoints.models import Partner
from events.models import EventType

rows = ROWS
have = Delivery.objects.filter(public_id__startswith="dlv_bench").count()
if have >= rows:
    print(f"reusing {have} bench deliveries")
else:
    partner = Partner.objects.filter(name="Bench").first() or partner_create(name="Bench")
    for n in range(100 - Endpoint.objects.filter(partner=partner).count()):
        url = f"https://bench{n}.example/hook"
        endpoint_create(partner, name=f"bench {n}", url=url, by="bench")
    endpoints = list(Endpoint.objects.filter(partner=partner).values_list("pk", flat=True))
    event_type, _ = EventType.objects.get_or_create(name="bench.loaded")
    events = rows // 2
    with connection.cursor() as c:
        c.execute("DELETE FROM deliveries_delivery WHERE public_id LIKE 'dlv_bench%%'")
        c.execute("DELETE FROM events_event WHERE source = 'bench'")
        c.execute('''
            INSERT INTO events_event (public_id, event_type_id, source, payload, body, tags,
                                      occurred_at, created_at)
            SELECT 'evt_bench' || lpad(g::text, 10, '0'), %s, 'bench', '{}'::jsonb, '{}',
                   '[]'::jsonb, now() - g * interval '1 second', now() - g * interval '1 second'
            FROM generate_series(1, %s) g''', [event_type.pk, events])
        # Per 1,000 deliveries: 900 succeeded, 40 dead, 20 retrying (half due),
        # 25 pending (due: 25,000 at 1M, above the count cap), 5 in flight, 10 cancelled.
        c.execute('''
            INSERT INTO deliveries_delivery (public_id, event_id, endpoint_id, status,
                attempt_count, next_attempt_at, claimed_until, lease_token, next_trigger,
                next_trigger_by, last_attempt_at, last_status_code, last_error, created_at,
                updated_at, completed_at)
            SELECT 'dlv_bench' || lpad(n::text, 10, '0'), e.id, (%s::bigint[])[1 + n %% 100],
                   s.status, 1,
                   CASE WHEN s.status = 'pending' THEN e.created_at
                        WHEN s.status = 'retrying'
                        THEN e.created_at + (n %% 2 * 2 - 1) * interval '1 day'
                   END,
                   CASE WHEN s.status = 'in_flight' THEN now() + interval '30 seconds' END,
                   '', 'auto', '', e.created_at, 200, '', e.created_at, e.created_at,
                   CASE WHEN s.status IN ('succeeded', 'dead', 'cancelled') THEN e.created_at END
            FROM (SELECT id, created_at, row_number() OVER (ORDER BY id) AS rn
                  FROM events_event WHERE source = 'bench') e
            CROSS JOIN generate_series(0, 1) k
            CROSS JOIN LATERAL (SELECT e.rn * 2 + k AS n) nn
            CROSS JOIN LATERAL (SELECT CASE
                WHEN n %% 1000 < 900 THEN 'succeeded' WHEN n %% 1000 < 940 THEN 'dead'
                WHEN n %% 1000 < 960 THEN 'retrying' WHEN n %% 1000 < 985 THEN 'pending'
                WHEN n %% 1000 < 990 THEN 'in_flight' ELSE 'cancelled' END AS status) s''',
            [endpoints])
    connection.commit() if not connection.get_autocommit() else None
    with connection.cursor() as c:
        c.execute("VACUUM ANALYZE deliveries_delivery")
        c.execute("VACUUM ANALYZE events_event")
    print(f"loaded {Delivery.objects.filter(public_id__startswith='dlv_bench').count()} deliveries")
"""

if __name__ == "__main__":
    sys.exit(main())
