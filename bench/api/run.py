"""Benchmark of `POST /api/v1/events/` through gunicorn on PostgreSQL (issue 7).

    .venv/bin/python -m bench.api.run                 # ~2 minutes
    .venv/bin/python -m bench.api.run --quick         # shorter runs
    .venv/bin/python -m bench.api.run --profile       # + py-spy profile of the workers

1. drops, creates and migrates the database `webhookhub_bench_api` (`--db-name`);
2. seeds a publisher token and a partner per fan-out size (1 and 10 endpoints);
3. starts `gunicorn webhookhub.wsgi --workers 2` with DEBUG=false, LOG_LEVEL=WARNING
   and the project's defaults otherwise (no qcluster: only publishing is measured);
4. per fan-out: a closed-loop run per concurrency (throughput, p50, p99), then an
   open-loop run at `--moderate-rate` requests/s (latency at moderate load);
5. checks the database holds exactly the events and deliveries that were answered 201;
6. prints a table and writes `bench/api/results/<UTC timestamp>.json`.

Everything (PostgreSQL, gunicorn, the load client) shares the machine's CPUs; the
table shows the CPU count and the client's own CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
PYTHON = sys.executable
TARGET_EVENTS_PER_SECOND = 500
TARGET_P99_MS = 50
TARGET_BATCH_EVENTS_PER_SECOND = 5000
OPEN_LOOP_RATE = 250  # events/s: the open-loop p99 target is set at this rate


def bench_env(db_url: str) -> dict:
    from cryptography.fernet import Fernet

    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webhookhub.settings",
        "DATABASE_URL": db_url,
        "SECRET_KEY": "bench-only-" + "x" * 50,
        "WEBHOOKHUB_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "WEBHOOKHUB_ALLOW_PRIVATE_URLS": "true",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "Q_LOG_LEVEL": "WARNING",
        "SECURE_SSL_REDIRECT": "false",
        "REDIS_URL": "",
        "PROMETHEUS_MULTIPROC_DIR": "",
        "PYTHONPATH": str(ROOT),
    }


def recreate_database(pg: str, name: str) -> None:
    import psycopg

    if not name.startswith("webhookhub_bench"):
        raise SystemExit("--db-name must start with webhookhub_bench")
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def sql(pg: str, name: str, query: str):
    import psycopg

    with psycopg.connect(f"{pg}/{name}", autocommit=True) as conn:
        return conn.execute(query).fetchone()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(env: dict, port: int, workers: int, threads: int, log) -> subprocess.Popen:
    threading = ["--threads", str(threads)] if threads > 1 else []
    process = subprocess.Popen(
        [str(Path(PYTHON).parent / "gunicorn"), "webhookhub.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--backlog", "2048", *threading],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("gunicorn did not start; see bench/api/logs/")


def cpu_times(pids: list[int]) -> dict[int, float]:
    """utime + stime per process, in seconds, from /proc (no psutil)."""
    times = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        times[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return times


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two snapshots by processes alive in both (PostgreSQL backends
    come and go; a backend that started during the run counts from zero)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def postgres_pids(pg: str, name: str) -> list[int]:
    """The backends serving the bench database (not other databases on the server)."""
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return [pid for (pid,) in rows]


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def load(env, port, token, partner, *, seconds, concurrency=None, rate=None, batch=0) -> dict:
    args = [PYTHON, "-m", "bench.api.loadgen", "--port", str(port), "--token", token,
            "--partner", partner, "--seconds", str(seconds), "--batch", str(batch)]  # fmt: skip
    args += ["--concurrency", str(concurrency)] if concurrency else ["--rate", str(rate)]
    out = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    raw = json.loads(out.stdout)
    latencies = sorted(raw["latencies"])
    ok = raw["statuses"].get("201", 0)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    mode = f"closed c={concurrency}" if concurrency else f"open {rate:g}/s"
    return {
        "mode": f"batch {batch} {mode}" if batch else mode,
        "requests": len(latencies),
        "created": ok * (batch or 1),  # events
        "answered_201": ok,
        "statuses": raw["statuses"],
        "seconds": round(raw["elapsed"], 2),
        "events_per_second": round(ok * (batch or 1) / raw["elapsed"], 1),
        "p50_ms": round(pct(0.50), 2),
        "p90_ms": round(pct(0.90), 2),
        "p99_ms": round(pct(0.99), 2),
        "max_ms": round(latencies[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        "client_cpu_seconds": round(raw["client_cpu_seconds"], 2),
    }


def profile(workers: list[int], seconds: float, out_dir: Path) -> list[Path]:
    """py-spy the gunicorn workers while load runs; collapsed stacks per worker."""
    spy = shutil.which("py-spy", path=str(Path(PYTHON).parent)) or shutil.which("py-spy")
    if not spy:
        print("py-spy not found: no profile", file=sys.stderr)
        return []
    outputs, procs = [], []
    for pid in workers:
        path = out_dir / f"pyspy-{pid}.txt"
        procs.append(subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
             "--format", "raw", "--output", str(path), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        outputs.append(path)
    return outputs, procs


# Where a request's time goes: the share of request samples (py-spy samples inside
# Django's WSGIHandler) whose stack holds each frame. Frames nest, so shares overlap.
PROFILE_FRAMES = [
    ("whole request (Django handler)", "WSGIHandler.__call__"),
    ("  DRF dispatch", "APIView.dispatch"),
    ("    token authentication", "ApiTokenAuthentication.authenticate"),
    ("    throttle + role check", "APIView.check_throttles"),
    ("    request body validation", "ApiViewMixin.validated"),
    ("    publish() (events.services.event_publish)", "event_publish"),
    ("      event type lookup", "_event_type"),
    ("      partner lookup", "_partner"),
    ("      event INSERT (Model.save)", "Model.save"),
    ("      subscription matching query", "endpoint_ids_for_event"),
    ("      deliveries bulk INSERT", "deliveries_create"),
    ("      COMMIT + on-commit hooks", "Atomic.__exit__"),
    ("        enqueue to django-q2 (on commit)", "enqueue"),
    ("    response serialization", "Serializer.data"),
    ("  waiting on PostgreSQL (psycopg)", "Connection.wait"),
    ("  SQL compilation (Django ORM)", "SQLCompiler.as_sql"),
    ("  django-prometheus DB wrapper", "ExportingCursorWrapper"),
]


def summarize_profile(paths: list[Path]) -> list[tuple[str, float]]:
    """Share of request samples whose stack holds each of `PROFILE_FRAMES`."""
    hits = dict.fromkeys([label for label, _ in PROFILE_FRAMES], 0)
    requests = 0
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit() or "WSGIHandler.__call__" not in stack:
                continue
            n = int(count)
            requests += n
            names = {frame.split(" (")[0] for frame in stack.split(";")}
            for label, frame in PROFILE_FRAMES:
                if any(name == frame or name.endswith("." + frame) or frame in name
                       for name in names):  # fmt: skip
                    hits[label] += n
    if not requests:
        return []
    return [(label, round(100 * n / requests, 1)) for label, n in hits.items()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db-name", default="webhookhub_bench_api")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help=">1: gthread workers")
    parser.add_argument(
        "--redis", metavar="URL", default="", help="django-q2 Redis broker (e.g. db 13)"
    )
    parser.add_argument("--fanouts", default="1,10")
    parser.add_argument("--concurrency", default="4,8,16")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--moderate-rate", type=float, help=f"open-loop rate (default {OPEN_LOOP_RATE}/s)"
    )
    parser.add_argument(
        "--batch", type=int, default=100, help="events per POST /events/batch/ (0: skip)"
    )
    parser.add_argument("--quick", action="store_true", help="4 s runs, concurrency 8 only")
    parser.add_argument("--profile", action="store_true", help="py-spy the workers at c=8")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.concurrency = 4, "8"
    fanouts = [int(n) for n in args.fanouts.split(",")]
    concurrencies = [int(n) for n in args.concurrency.split(",")]

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    log_dir = Path(__file__).resolve().parent / "logs" / stamp
    log_dir.mkdir(parents=True, exist_ok=True)
    db_url = f"{args.pg}/{args.db_name}"
    env = bench_env(db_url)
    env["REDIS_URL"] = args.redis
    if args.redis:
        import redis

        redis.Redis.from_url(args.redis).flushdb()
    load_before = os.getloadavg()
    print(f"database {args.db_name}: recreate, migrate, seed", file=sys.stderr)
    recreate_database(args.pg, args.db_name)
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    seeded = json.loads(subprocess.run(
        [PYTHON, "-m", "bench.api.seed", *map(str, fanouts)], cwd=ROOT, env=env,
        capture_output=True, text=True, check=True,
    ).stdout)  # fmt: skip
    port = free_port()
    with open(log_dir / "gunicorn.log", "w") as log:
        server = start_gunicorn(env, port, args.workers, args.threads, log)
    workers = worker_pids(server.pid)

    def measured(**kwargs) -> dict:
        """A load run, with the CPU the web workers and PostgreSQL spent on it."""
        backends = postgres_pids(args.pg, args.db_name)
        web, db = cpu_times(workers), cpu_times(backends)
        run = load(env, port, seeded["token"], partner, seconds=args.seconds, **kwargs)
        per = max(run["created"] if kwargs.get("batch") else run["requests"], 1)
        web_ms = cpu_spent(web, cpu_times(workers)) * 1000 / per
        # Backends re-opened during the run (CONN_MAX_AGE) count from zero.
        db_ms = cpu_spent(db, cpu_times(postgres_pids(args.pg, args.db_name))) * 1000 / per
        run["web_cpu_ms_per_request"] = round(web_ms, 2)
        run["postgres_cpu_ms_per_request"] = round(db_ms, 2)
        return run

    results = {"runs": [], "profile": None}
    answered: dict[int, int] = {}
    try:
        for fanout in fanouts:
            partner = seeded["partners"][str(fanout)]
            warm = load(env, port, seeded["token"], partner, seconds=2, concurrency=4)
            answered[fanout] = warm["created"]
            for concurrency in concurrencies:
                spying = args.profile and fanout == fanouts[0] and concurrency == 8
                if spying:
                    paths, spies = profile(workers, args.seconds, log_dir)
                run = measured(concurrency=concurrency)
                if spying:
                    for spy in spies:
                        spy.wait(timeout=60)
                    results["profile"] = summarize_profile(paths)
                results["runs"].append({"fanout": fanout, **run})
                answered[fanout] += run["created"]
                print(json.dumps(results["runs"][-1]), file=sys.stderr)
            run = measured(rate=args.moderate_rate or OPEN_LOOP_RATE)
            results["runs"].append({"fanout": fanout, **run})
            answered[fanout] += run["created"]
            print(json.dumps(results["runs"][-1]), file=sys.stderr)
            if args.batch and fanout == 1:
                for concurrency in (2, 4):
                    run = measured(concurrency=concurrency, batch=args.batch)
                    results["runs"].append({"fanout": fanout, **run})
                    answered[fanout] += run["created"]
                    print(json.dumps(results["runs"][-1]), file=sys.stderr)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    # Every 201 is one event in the database with exactly `fanout` deliveries.
    check = {}
    for fanout in fanouts:
        events, deliveries = sql(
            args.pg,
            args.db_name,
            "SELECT count(DISTINCT e.id), count(d.id) FROM events_event e "
            "JOIN endpoints_partner p ON p.id = e.partner_id "
            "LEFT JOIN deliveries_delivery d ON d.event_id = e.id "
            f"WHERE p.public_id = '{seeded['partners'][str(fanout)]}'",
        )
        check[fanout] = {
            "answered_201": answered[fanout],
            "events_in_db": events,
            "deliveries_in_db": deliveries,
            "ok": events == answered[fanout] and deliveries == fanout * events,
        }
    results["check"] = check
    results["machine"] = {"cpus": os.cpu_count(), "loadavg_before": load_before,
                          "loadavg_after": os.getloadavg()}  # fmt: skip
    results["settings"] = {"workers": args.workers, "threads": args.threads,
                           "broker": "redis" if args.redis else "orm", "seconds": args.seconds,
                           "moderate_rate": args.moderate_rate}  # fmt: skip

    kind = f"gthread x{args.threads}" if args.threads > 1 else "sync"
    lines = [
        f"POST /api/v1/events/ — gunicorn {args.workers} {kind} workers, PostgreSQL, "
        f"{'Redis' if args.redis else 'ORM'} broker, {os.cpu_count()} CPUs shared with the "
        f"load client; load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}",
        f"{'fanout':>6} {'mode':>14} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'non-201':>8} {'web cpu ms/event':>17} {'pg cpu ms/event':>16}",
    ]
    for r in results["runs"]:
        bad = r["requests"] - r.get("answered_201", r["created"])
        lines.append(
            f"{r['fanout']:>6} {r['mode']:>14} {r['events_per_second']:>9} {r['p50_ms']:>8} "
            f"{r['p99_ms']:>8} {r['max_ms']:>8} {bad:>8} {r['web_cpu_ms_per_request']:>17} "
            f"{r['postgres_cpu_ms_per_request']:>16}"
        )
    best_1 = max((r["events_per_second"] for r in results["runs"]
                  if r["fanout"] == 1 and r["mode"].startswith("closed")), default=0)  # fmt: skip
    best_batch = max((r["events_per_second"] for r in results["runs"]
                      if r["mode"].startswith("batch")), default=None)  # fmt: skip
    moderate_1 = next(
        (r for r in results["runs"] if r["fanout"] == 1 and r["mode"].startswith("open")), None
    )
    lines.append(
        f"target: >= {TARGET_EVENTS_PER_SECOND} events/s at fan-out 1: {best_1} "
        f"{'PASS' if best_1 >= TARGET_EVENTS_PER_SECOND else 'FAIL'}"
    )
    if moderate_1:
        lines.append(
            f"target: p99 < {TARGET_P99_MS} ms at moderate load ({moderate_1['mode']}): "
            f"{moderate_1['p99_ms']} {'PASS' if moderate_1['p99_ms'] < TARGET_P99_MS else 'FAIL'}"
        )
    if best_batch is not None:
        lines.append(
            f"target: >= {TARGET_BATCH_EVENTS_PER_SECOND} events/s through the batch endpoint "
            f"({args.batch} per request) at fan-out 1: {best_batch} "
            f"{'PASS' if best_batch >= TARGET_BATCH_EVENTS_PER_SECOND else 'FAIL'}"
        )
    for fanout, c in check.items():
        lines.append(
            f"check fan-out {fanout}: {c['answered_201']} answered 201, {c['events_in_db']} "
            f"events and {c['deliveries_in_db']} deliveries in the database: "
            f"{'OK' if c['ok'] else 'MISMATCH'}"
        )
    if results["profile"]:
        lines.append("profile at c=8 (share of request samples whose stack holds the frame):")
        lines += [f"  {share:5.1f}%  {label}" for label, share in results["profile"]]
    results["table"] = lines
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"api-{stamp}.json").write_text(json.dumps(results, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
