#!/usr/bin/env python
"""Prune a history-sized database while deliveries go on (bench/admin/load.py's data).

    BENCH_ADMIN_DB=webhookhub_bench_admin .venv/bin/python bench/admin/prune.py \
        --label after [--older-than 1] [--batch-size 500]

1. copies the loaded database (BENCH_ADMIN_DB, which nobody may be connected to) into
   `<BENCH_ADMIN_DB>_run` with CREATE DATABASE … TEMPLATE, and migrates the copy (the
   source is never written);
2. starts a delivery probe in a thread: every 50 ms one publish() to the busiest
   endpoint (its own transaction), then the drain's own claim (lifecycle.claim: UPDATE …
   FOR UPDATE SKIP LOCKED) of up to 10 due deliveries and their recording (attempt rows,
   lifecycle.succeed) — the statements a worker runs, each cycle timed;
3. measures the probe alone for 5 s, then runs `events_prune` (deliveries.retention;
   `--module deliveries.maintenance` for the code before it) with `older_than` days, as
   `prune_events --older-than`, timing every batch (one transaction each) — stopping
   after `--max-seconds` if given — then stops the probe;
4. prints and writes bench/admin/results/prune-<label>-<UTC timestamp>.json and drops
   the copy.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchenv

COPY = f"{benchenv.DB_NAME}_run"


def admin_sql(*statements):
    import psycopg

    with psycopg.connect(benchenv.database_url("postgres"), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def make_copy():
    admin_sql(
        f'DROP DATABASE IF EXISTS "{COPY}" WITH (FORCE)',
        f'CREATE DATABASE "{COPY}" TEMPLATE "{benchenv.DB_NAME}"',
    )
    env = {**os.environ, **benchenv.settings_env(), "DATABASE_URL": benchenv.database_url(COPY)}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=benchenv.ROOT,
        env=env,
        check=True,
    )


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else None


class Probe(threading.Thread):
    """What a publisher and a worker do to the database, every 50 ms, timed."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.samples = []  # (monotonic start, phase, seconds)
        self.pid = None

    def run(self):
        import secrets

        from django.db import connection, transaction
        from django.utils import timezone

        from deliveries import lifecycle
        from deliveries.models import DeliveryAttempt
        from endpoints.models import Endpoint
        from events.services import publish

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            self.pid = cursor.fetchone()[0]
        endpoint = Endpoint.objects.filter(enabled=True).order_by("pk").first()
        partner = endpoint.partner
        n = 0
        while not self.stop.is_set():
            n += 1
            t0 = time.monotonic()
            with transaction.atomic():
                publish("order.created", {"probe": n}, partner=partner)
            t1 = time.monotonic()
            token = secrets.token_hex(8)
            now = timezone.now()
            claimed = lifecycle.claim(
                endpoint.pk, limit=10, token=token, lease=timedelta(seconds=30), now=now
            )
            t2 = time.monotonic()
            with transaction.atomic():
                DeliveryAttempt.objects.bulk_create(
                    DeliveryAttempt(
                        delivery_id=d.pk,
                        number=d.attempt_count + 1,
                        trigger=d.next_trigger,
                        started_at=now,
                        duration_ms=1,
                        request_url=endpoint.url,
                        response_status_code=200,
                        succeeded=True,
                    )
                    for d in claimed
                )
                lifecycle.succeed({200: [d.pk for d in claimed]}, token=token, now=now)
            t3 = time.monotonic()
            self.samples += [(t0, "publish", t1 - t0), (t0, "claim", t2 - t1),
                             (t0, "record", t3 - t2), (t0, "cycle", t3 - t0)]  # fmt: skip
            self.stop.wait(max(0.0, 0.05 - (t3 - t0)))
        connection.close()

    def summary(self, since, until):
        out = {}
        for phase in ("publish", "claim", "record", "cycle"):
            values = [s for t, p, s in self.samples if p == phase and since <= t < until]
            out[phase] = {
                "n": len(values),
                "p50_ms": round(1000 * percentile(values, 50), 1) if values else None,
                "p99_ms": round(1000 * percentile(values, 99), 1) if values else None,
                "max_ms": round(1000 * max(values), 1) if values else None,
            }
        return out


TABLES = ("events_event", "deliveries_delivery", "deliveries_deliveryattempt")


class StopPrune(Exception):
    """--max-seconds is over (raised between two batches, after a commit)."""


class LockWatch(threading.Thread):
    """Samples pg_stat_activity every 10 ms: how long any backend of the copy waited on
    a lock at a stretch (the probe's own backend, and any)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.probe_pid = None
        self.longest = {"probe": 0.0, "any": 0.0}
        self.samples_waiting = 0

    def run(self):
        import psycopg

        waiting_since = {}
        with psycopg.connect(benchenv.database_url("postgres"), autocommit=True) as conn:
            while not self.stop.is_set():
                now = time.monotonic()
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s "
                    "AND wait_event_type = 'Lock'",
                    [COPY],
                ).fetchall()
                pids = {pid for (pid,) in rows}
                self.samples_waiting += bool(pids)
                for pid in pids:
                    waited = now - waiting_since.setdefault(pid, now)
                    self.longest["any"] = max(self.longest["any"], waited)
                    if pid == self.probe_pid:
                        self.longest["probe"] = max(self.longest["probe"], waited)
                for pid in list(waiting_since):
                    if pid not in pids:
                        del waiting_since[pid]
                self.stop.wait(0.01)


def counts(above=None):
    """Rows per table (with `above`: only rows with a greater id, i.e. new ones) and the
    greatest id."""
    from django.db import connection

    with connection.cursor() as cursor:
        out = {}
        for table in TABLES:
            floor = (above or {}).get(table, (0, 0))[1]
            cursor.execute(
                f"SELECT count(*), coalesce(max(id), 0) FROM {table} WHERE id > %s", [floor]
            )
            out[table] = cursor.fetchone()
        return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--label", required=True)
    parser.add_argument("--older-than", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--module",
        default="deliveries.retention",
        help="Where events_prune is (deliveries.maintenance before the retention module).",
    )
    parser.add_argument("--max-seconds", type=float, default=None, help="Stop pruning then.")
    args = parser.parse_args()

    started = time.perf_counter()
    make_copy()
    copied = time.perf_counter() - started
    os.environ.update(benchenv.settings_env())
    os.environ["DATABASE_URL"] = benchenv.database_url(COPY)
    sys.path.insert(0, str(benchenv.ROOT))
    import django

    django.setup()
    import importlib

    events_prune = importlib.import_module(args.module).events_prune

    before = counts()
    probe, locks = Probe(), LockWatch()
    probe.start()
    locks.start()
    time.sleep(5)
    locks.probe_pid = probe.pid
    batches, last = [], [time.monotonic()]

    def progress(n):
        now = time.monotonic()
        batches.append(now - last[0])
        last[0] = now
        if args.max_seconds and now - t_prune > args.max_seconds:
            raise StopPrune

    t_prune = time.monotonic()
    complete = True
    try:
        events_prune(
            older_than=timedelta(days=args.older_than),
            batch_size=args.batch_size,
            progress=progress,
        )
    except StopPrune:
        complete = False
    t_done = time.monotonic()
    probe.stop.set()
    locks.stop.set()
    probe.join()
    locks.join()
    after, added = counts(), counts(above=before)
    # Deleted: what was there before, less what is left of it (the probe added rows).
    deleted = {t: before[t][0] - (after[t][0] - added[t][0]) for t in TABLES}
    wall = t_done - t_prune
    deleted_rows = sum(deleted.values())
    report = {
        "label": args.label,
        "at": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
        "database": COPY,
        "copy_and_migrate_seconds": round(copied, 1),
        "older_than_days": args.older_than,
        "batch_size": args.batch_size,
        "complete": complete,
        "rows_before": {t: before[t][0] for t in TABLES},
        "rows_after": {t: after[t][0] for t in TABLES},
        "rows_added_by_probe": {t: added[t][0] for t in TABLES},
        "deleted": deleted,
        "wall_seconds": round(wall, 1),
        "events_per_second": round(deleted["events_event"] / wall),
        "rows_per_second": round(deleted_rows / wall),
        "batches": len(batches),
        "batch_seconds": {
            "p50": round(percentile(batches, 50), 3),
            "p99": round(percentile(batches, 99), 3),
            "max": round(max(batches), 3),
        },
        "lock_wait_max_ms": {k: round(1000 * v, 1) for k, v in locks.longest.items()},
        "lock_wait_samples": locks.samples_waiting,
        "probe_idle": probe.summary(t_prune - 5, t_prune),
        "probe_during_prune": probe.summary(t_prune, t_done),
    }
    text = json.dumps(report, indent=2)
    print(text)
    benchenv.RESULTS.mkdir(exist_ok=True)
    (benchenv.RESULTS / f"prune-{args.label}-{report['at']}.json").write_text(text + "\n")
    from django.db import connections

    connections.close_all()
    admin_sql(f'DROP DATABASE IF EXISTS "{COPY}" WITH (FORCE)')


if __name__ == "__main__":
    main()
