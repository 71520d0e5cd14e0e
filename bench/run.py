"""webhookhub benchmark runner: `make bench` (BENCH_ARGS=...) or `python bench/run.py`.

Creates a fresh PostgreSQL database (drop + create + migrate), starts the receiver,
runs the selected parts, prints a table with pass/fail against the targets, and writes
bench/results/<name>-<UTC timestamp>.json and bench/results/latest.json.

Parts (--only, comma-separated; default all):
  fanout      publish() of 1 event to 1/100/1,000 endpoints: time and SQL queries
  receiver    the receiver's own ceiling (load client hammering it), 0 ms and 50 ms
  throughput  N deliveries through qcluster vs a bare client, receiver at 0 ms and 50 ms
  latency     publish-commit -> receiver arrival at a steady rate, p50/p95/p99
  everyday    one publish() per transaction: throughput vs a bare client, steady-rate
              latency, CPU per delivery, RSS; PostgreSQL (both brokers) and SQLite
(RSS of every qcluster process is recorded at the end of each throughput run.)

See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    DEFAULT_DB,
    DEFAULT_PG,
    DEFAULT_REDIS,
    LOGS,
    PYTHON,
    RESULTS,
    base_env,
    broker_env,
    cpu_delta,
    cpu_snapshot,
    loadavg,
    recreate_database,
    start_receiver,
    stop_process_group,
    write_json,
)

CPUS = os.cpu_count() or 1
PARTS = ("fanout", "receiver", "throughput", "latency", "everyday")
TARGETS = {
    "ratio_0ms": 0.6,
    "ratio_slow": 0.8,
    "p50_redis_ms": 30.0,
    "p50_orm_ms": 300.0,
    "worker_rss_mb": 120.0,
    # everyday (bench/everyday.py): one publish() per transaction
    "everyday_ratio": 0.8,  # webhookhub/bare, 1 endpoint, max_in_flight 32, 0 and 50 ms
    "everyday_cap_share": 0.9,  # max_in_flight 10 at 50 ms: >= 0.9 x 10 / 0.05 s = 180/s
    "everyday_p50_redis_ms": 25.0,
    "everyday_p99_redis_ms": 100.0,
    "everyday_p50_orm_ms": 100.0,  # also SQLite (ORM broker)
    "everyday_p99_orm_ms": 300.0,
    "everyday_cpu_ms_per_delivery": 2.0,  # cluster + PostgreSQL + Redis + publisher
}
EVERYDAY_SCENARIOS = "a0_c10,a0_c32,a50_c10,a50_c32,b0_x3,c50,c200"
EVERYDAY_SQLITE_SCENARIOS = ("a0_c32", "c50")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="webhookhub benchmarks", formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(PARTS), help=f"parts: {','.join(PARTS)}")
    parser.add_argument("--brokers", default="orm,redis", help="orm,redis")
    parser.add_argument("--quick", action="store_true", help="smaller N, fewer runs, short latency")
    parser.add_argument("--n", type=int, default=None, help="deliveries per throughput run (5000)")
    parser.add_argument("--endpoints", type=int, default=50, help="throughput endpoints (50)")
    parser.add_argument("--txns", type=int, default=5, help="throughput publish transactions")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="slow receiver delay")
    parser.add_argument("--rate", type=float, default=40.0, help="latency: events per second")
    parser.add_argument("--duration", type=float, default=None, help="latency: seconds (15)")
    parser.add_argument("--fanout-sizes", default="1,100,1000")
    parser.add_argument("--fanout-runs", type=int, default=None, help="timed runs per size (7)")
    parser.add_argument("--bare", default="session,transport,procs", help="bare client modes")
    parser.add_argument("--workers", type=int, default=None, help="WEBHOOKHUB_Q_WORKERS")
    parser.add_argument("--batch-size", type=int, default=None, help="..._DELIVERY_BATCH_SIZE")
    parser.add_argument("--send-concurrency", type=int, default=None, help="..._SEND_CONCURRENCY")
    parser.add_argument(
        "--everyday-n", type=int, default=None, help="everyday: events per throughput run (2000)"
    )
    parser.add_argument(
        "--everyday-duration", type=float, default=None, help="everyday: steady-rate seconds (15)"
    )
    parser.add_argument(
        "--everyday-scenarios",
        default=EVERYDAY_SCENARIOS,
        help=f"everyday scenarios ({EVERYDAY_SCENARIOS}); SQLite runs only "
        f"{','.join(EVERYDAY_SQLITE_SCENARIOS)} of them",
    )
    parser.add_argument(
        "--everyday-sqlite",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="everyday: also run on SQLite with the ORM broker (default on)",
    )
    parser.add_argument(
        "--everyday-sqlite-file",
        default=str(LOGS / "everyday-bench.sqlite3"),
        help="everyday: the SQLite file (deleted and migrated by the run)",
    )
    parser.add_argument(
        "--everyday-timeout", type=float, default=120.0, help="everyday: wait for deliveries, s"
    )
    parser.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL server URL (no db name)")
    parser.add_argument("--db-name", default=DEFAULT_DB, help="must start with webhookhub_bench")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--name", default="bench", help="results file prefix")
    parser.add_argument("--profile", action="store_true", help="py-spy the cluster (diagnosis)")
    parser.add_argument(
        "--hold-dispatcher",
        action="store_true",
        help="diagnosis: the bench holds the dispatcher lease, so no loop re-dispatches",
    )
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    args.broker_list = [b.strip() for b in args.brokers.split(",") if b.strip()]
    if args.n is None:
        args.n = 1000 if args.quick else 5000
    if args.duration is None:
        args.duration = 5.0 if args.quick else 15.0
    if args.fanout_runs is None:
        args.fanout_runs = 3 if args.quick else 7
    if args.everyday_n is None:
        args.everyday_n = 500 if args.quick else 2000
    if args.everyday_duration is None:
        args.everyday_duration = 5.0 if args.quick else 15.0
    return args


def code_fingerprint() -> dict:
    """sha256 over the project's Python sources (no git here), and the newest file."""
    digest = hashlib.sha256()
    newest = (0.0, "")
    skip = {".venv", "bench", "tests", "node_modules", ".git", "var"}
    paths = [p for p in ROOT.glob("*.py")] + [
        p
        for top in ROOT.iterdir()
        if top.is_dir() and top.name not in skip and not top.name.startswith(".")
        for p in top.rglob("*.py")
    ]
    for path in sorted(paths):
        rel = path.relative_to(ROOT)
        if "migrations" in rel.parts:
            continue
        digest.update(str(rel).encode() + b"\0" + path.read_bytes())
        newest = max(newest, (path.stat().st_mtime, str(rel)))
    return {
        "sha256": digest.hexdigest()[:16],
        "newest_file": newest[1],
        "newest_mtime": datetime.fromtimestamp(newest[0], UTC).isoformat(timespec="seconds"),
    }


def server_versions(pg: str, redis_url: str) -> dict:
    out = {}
    try:
        import psycopg

        with psycopg.connect(f"{pg.rstrip('/')}/postgres") as conn:
            out["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
    except Exception as exc:
        out["postgresql"] = f"unavailable: {exc}"
    try:
        import redis

        client = redis.from_url(redis_url)
        out["redis"] = client.info("server")["redis_version"]
        client.close()
    except Exception as exc:
        out["redis"] = f"unavailable: {exc}"
    return out


def run_child(module: str, args: list[str], env: dict, out: Path) -> dict:
    """Run a bench part in its own process; return its JSON (or the error)."""
    started = time.monotonic()
    proc = subprocess.run([PYTHON, "-m", module, "--out", str(out), *args], cwd=ROOT, env=env)
    elapsed = time.monotonic() - started
    data = json.loads(out.read_text()) if out.exists() else {}
    if proc.returncode != 0:
        data["error"] = f"{module} exited with {proc.returncode} (see output above)"
    data["elapsed_s"] = round(elapsed, 1)
    return data


def receiver_ceiling(
    receiver, receiver_pid: int, *, delay_ms: float, procs: int, conns: int, seconds: float
) -> dict:
    """Hammer the receiver with `procs` load-client processes x `conns` connections."""
    receiver.set_delay(delay_ms)
    receiver.reset()
    port = int(receiver.base_url.rsplit(":", 1)[1])
    before = cpu_snapshot({"receiver": [receiver_pid]})
    clients = [
        subprocess.Popen(
            [
                PYTHON,
                "-m",
                "bench.loadgen",
                "--port",
                str(port),
                "--connections",
                str(conns),
                "--seconds",
                str(seconds),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(procs)
    ]
    results = [json.loads(c.communicate()[0].strip().splitlines()[-1]) for c in clients]
    after = cpu_snapshot({"receiver": [receiver_pid]})
    stats = receiver.stats()
    receiver.set_delay(0)
    span = (stats["last"] - stats["first"]) if stats["first"] else None
    out = {
        "delay_ms": delay_ms,
        "load_processes": procs,
        "connections": procs * conns,
        "seconds": seconds,
        "requests": stats["count"],
        "requests_per_s": stats["count"] / span if span else None,
        "client_errors": sum(r["errors"] for r in results),
        "receiver_cpu_s": cpu_delta(before, after)["receiver"],
    }
    if delay_ms > 0:
        out["theoretical_max_per_s"] = procs * conns / (delay_ms / 1000.0)
    receiver.reset()
    return out


# --- the table --------------------------------------------------------------------------------


def fmt(value, spec=",.0f", none="—") -> str:
    if value is None:
        return none
    return format(value, spec)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def target_text(prefix: str, limit: float, value, compare) -> str:
    limit_text = format(limit, "g")
    return f"{prefix}{limit_text} {verdict(None if value is None else compare(value, limit))}"


def evaluate(results: dict) -> list[dict]:
    """Every target with its measured value and pass/fail."""
    checks = []
    for broker, part in results.get("delivery", {}).items():
        for label, scen in part.get("scenarios", {}).items():
            if label.startswith("tp"):
                ratio = (scen.get("ratio") or {}).get("session")
                limit = TARGETS["ratio_0ms"] if scen["delay_ms"] == 0 else TARGETS["ratio_slow"]
                checks.append(
                    {
                        "target": f"throughput {broker} receiver {scen['delay_ms']:.0f} ms: "
                        f"qcluster/bare >= {limit}",
                        "value": ratio,
                        "pass": None if ratio is None else ratio >= limit,
                    }
                )
                for proc in scen.get("qcluster", {}).get("processes", []):
                    if proc["role"].startswith("worker"):
                        checks.append(
                            {
                                "target": f"RSS {broker} {label} {proc['role']} pid {proc['pid']} "
                                f"< {TARGETS['worker_rss_mb']:.0f} MB",
                                "value": proc["rss_mb"],
                                "pass": proc["rss_mb"] < TARGETS["worker_rss_mb"],
                            }
                        )
            elif label == "lat":
                p50 = (scen.get("latency_ms") or {}).get("p50")
                limit = TARGETS["p50_redis_ms"] if broker == "redis" else TARGETS["p50_orm_ms"]
                checks.append(
                    {
                        "target": f"e2e latency {broker}: p50 < {limit:.0f} ms",
                        "value": p50,
                        "pass": None if p50 is None else (p50 < limit and scen.get("lost") == 0),
                    }
                )
    checks += everyday_checks(results)
    return checks


def everyday_latency_limits(variant: str) -> tuple[float, float]:
    if variant.endswith("redis"):
        return TARGETS["everyday_p50_redis_ms"], TARGETS["everyday_p99_redis_ms"]
    return TARGETS["everyday_p50_orm_ms"], TARGETS["everyday_p99_orm_ms"]


def everyday_target(variant: str, scen: dict) -> tuple[str, float | None, bool | None, str] | None:
    """(target text, measured value, pass, short text) of one everyday throughput
    scenario, if it has a target."""
    if scen.get("shape") != "a":
        return None
    cap, delay = scen.get("max_in_flight"), scen.get("delay_ms", 0)
    if cap == 32:
        ratio = scen.get("ratio")
        limit = TARGETS["everyday_ratio"]
        return (
            f"everyday {variant} a {delay:.0f} ms max_in_flight 32: webhookhub/bare >= {limit}",
            ratio,
            None if ratio is None else ratio >= limit,
            f"ratio>={limit:g}",
        )
    if delay and scen.get("cap_ceiling_per_s") and cap != 32:
        limit = TARGETS["everyday_cap_share"] * scen["cap_ceiling_per_s"]
        value = (scen.get("webhookhub") or {}).get("deliveries_per_s")
        return (
            f"everyday {variant} a {delay:.0f} ms max_in_flight {cap}: >= "
            f"{TARGETS['everyday_cap_share']} x {scen['cap_ceiling_per_s']:.0f}/s = {limit:.0f}/s",
            value,
            None if value is None else value >= limit,
            f">={limit:.0f}/s",
        )
    return None


def everyday_checks(results: dict) -> list[dict]:
    checks = []
    for variant, part in results.get("everyday", {}).items():
        scenarios = part.get("scenarios", {})
        for label, scen in scenarios.items():
            if scen.get("error"):
                checks.append(
                    {"target": f"everyday {variant} {label} ran", "value": None, "pass": False}
                )
                continue
            found = everyday_target(variant, scen)
            if found:
                checks.append({"target": found[0], "value": found[1], "pass": found[2]})
            if scen.get("shape") == "c":
                rate = scen["rate"]
                offered = scen.get("offered_per_s")
                short = (
                    f" (publisher offered only {offered:.0f}/s)"
                    if offered and offered < 0.95 * rate
                    else ""
                )
                checks.append(
                    {
                        "target": f"everyday {variant} steady {rate:.0f}/s: keeps up (all "
                        f"delivered within 5 s of the last publish){short}",
                        "value": scen.get("delivered_within_grace"),
                        "pass": bool(scen.get("keeps_up")),
                    }
                )
                p50_limit, p99_limit = everyday_latency_limits(variant)
                lat = scen.get("latency_ms") or {}
                for q, limit in (("p50", p50_limit), ("p99", p99_limit)):
                    value = lat.get(q)
                    checks.append(
                        {
                            "target": f"everyday {variant} steady {rate:.0f}/s: {q} < "
                            f"{limit:.0f} ms",
                            "value": value,
                            "pass": None if value is None else value < limit,
                        }
                    )
        cpu_scen = scenarios.get("a0_c32", {})
        cpu = (cpu_scen.get("webhookhub") or {}).get("cpu") or {}
        if cpu:
            limit = TARGETS["everyday_cpu_ms_per_delivery"]
            value = cpu.get("ms_per_delivery")
            checks.append(
                {
                    "target": f"everyday {variant} a0_c32 CPU <= {limit:g} ms per delivery "
                    "(cluster + PostgreSQL + Redis + publisher)",
                    "value": value,
                    "pass": None if value is None else value <= limit,
                }
            )
        workers = [
            p["rss_mb"]
            for scen in scenarios.values()
            if scen.get("shape") == "a"
            for p in (scen.get("webhookhub") or {}).get("processes", [])
            if p["role"].startswith("worker")
        ]
        if workers:
            checks.append(
                {
                    "target": f"everyday {variant} RSS < {TARGETS['worker_rss_mb']:.0f} MB per "
                    "worker at the end of shape (a) (largest)",
                    "value": max(workers),
                    "pass": max(workers) < TARGETS["worker_rss_mb"],
                }
            )
    return checks


def render(results: dict) -> str:
    lines: list[str] = []
    add = lines.append
    meta = results["meta"]
    add(f"webhookhub bench — {meta['started_utc']} — {meta['elapsed_s']:.0f} s")
    cfg = results.get("config", {})
    add(
        f"machine: {meta['cpus']} CPUs, Python {meta['python']}, PostgreSQL "
        f"{meta['servers'].get('postgresql')}, Redis {meta['servers'].get('redis')}; "
        f"load avg before {meta['loadavg_before']}, after {meta.get('loadavg_after')}"
    )
    add(
        f"code: sha256 {meta['code']['sha256']} (newest {meta['code']['newest_file']} "
        f"{meta['code']['newest_mtime']})"
    )
    if cfg:
        add(
            f"qcluster: {cfg.get('workers')} workers (1 runs the dispatcher loop), batch "
            f"{cfg.get('batch_size')}, send concurrency {cfg.get('send_concurrency')}, "
            f"queue_limit {cfg.get('queue_limit')}, poll {cfg.get('poll')} s; "
            f"database {meta['database']}; redis {meta['redis_url']}"
        )
    add("")

    fan = results.get("fanout")
    if fan:
        add(
            "1. publish_fanout — one publish() in transaction.atomic(), committed "
            f"(median of {next(iter(fan.values()))['results'][0]['runs']} runs, ms)"
        )
        add(
            f"  {'broker':6} {'endpoints':>9} {'publish':>8} {'commit':>7} {'enqueue':>8} "
            f"{'total':>8} {'min–max total':>15} {'queries':>7} {'tasks':>5} {'redis conns':>11}"
        )
        for broker, data in fan.items():
            if "error" in data and not data.get("results"):
                add(f"  {broker:6} ERROR {data['error']}")
                continue
            for r in data["results"]:
                add(
                    f"  {broker:6} {r['endpoints']:>9,} {r['median_publish_ms']:>8.1f} "
                    f"{r['median_commit_ms']:>7.1f} {r['median_enqueue_ms']:>8.1f} "
                    f"{r['median_total_ms']:>8.1f} "
                    f"{r['min_total_ms']:>7.1f}–{r['max_total_ms']:<7.1f} {r['queries']:>7} "
                    f"{r['tasks_enqueued']:>5} {fmt(r['redis_connections_opened'], 'd'):>11}"
                )
        for broker, data in fan.items():
            for r in data.get("results", []):
                if r["endpoints"] == max(x["endpoints"] for x in data["results"]):
                    add(
                        f"  query shapes, {broker} broker, {r['endpoints']:,} endpoints "
                        f"({r['queries']} queries):"
                    )
                    for shape in r["query_shapes"]:
                        add(f"    {shape['count']:>3} × {shape['sql'][:150]}")
        add("")

    rec = results.get("receiver")
    if rec:
        add("2. receiver ceiling — bench/receiver.py (1 asyncio process) under bench/loadgen.py")
        for r in rec:
            extra = (
                f", theoretical max {r['theoretical_max_per_s']:,.0f}/s"
                if r.get("theoretical_max_per_s")
                else ""
            )
            add(
                f"  delay {r['delay_ms']:>3.0f} ms: {fmt(r['requests_per_s'])} req/s "
                f"({r['load_processes']} client processes x "
                f"{r['connections'] // r['load_processes']}"
                f" connections, {r['seconds']:.0f} s, receiver CPU {r['receiver_cpu_s']:.1f} s"
                f"{extra})"
            )
        add("")

    delivery = results.get("delivery", {})
    tp_rows = [
        (broker, label, scen)
        for broker, part in delivery.items()
        for label, scen in part.get("scenarios", {}).items()
        if label.startswith("tp")
    ]
    if tp_rows:
        first = tp_rows[0][2]
        add(
            f"3. delivery throughput — N={first['n']:,} deliveries = {first['events']:,} events x "
            f"{first['endpoints']} endpoints on one receiver, published in {first['txns']} "
            "transactions committed together; deliveries/s from first commit to last arrival"
        )
        add(
            f"  concurrency: qcluster {first['concurrency']['qcluster']}; bare "
            f"{first['concurrency']['bare']}"
        )
        add(
            f"  {'broker':6} {'delay':>5} {'qcluster/s':>10} {'bare/s':>8} {'ratio':>6} "
            f"{'target':>11} {'bare 3proc/s':>12} {'ratio':>6} {'transport/s':>11} "
            f"{'redispatched':>12} {'tasks pushed':>12}"
        )
        for broker, _label, scen in tp_rows:
            q = scen.get("qcluster", {})
            ratio = scen.get("ratio") or {}
            limit = TARGETS["ratio_0ms"] if scen["delay_ms"] == 0 else TARGETS["ratio_slow"]
            r = ratio.get("session")
            tasks = (
                f"{q.get('tasks_pushed')}/{q.get('fast_path_tasks')}"
                if q.get("tasks_pushed") is not None
                else "—"
            )
            add(
                f"  {broker:6} {scen['delay_ms']:>3.0f}ms {fmt(q.get('deliveries_per_s')):>10} "
                f"{fmt(scen.get('bare_session', {}).get('deliveries_per_s')):>8} "
                f"{fmt(r, '.2f'):>6} {target_text('>=', limit, r, lambda v, t: v >= t):>11} "
                f"{fmt(scen.get('bare_procs', {}).get('deliveries_per_s')):>12} "
                f"{fmt(ratio.get('procs'), '.2f'):>6} "
                f"{fmt(scen.get('bare_transport', {}).get('deliveries_per_s')):>11} "
                f"{fmt(q.get('redispatched_by_dispatcher'), 'd'):>12} {tasks:>12}"
            )
        add(
            "  (redispatched = deliveries the dispatcher loop re-reserved and re-enqueued while "
            "their fast-path task was still queued; tasks pushed = pushed/fast-path expected)"
        )
        for broker, label, scen in tp_rows:
            q = scen.get("qcluster", {})
            cpu = q.get("cpu_s", {})
            if q:
                add(
                    f"  {broker} {label}: {fmt(q.get('seconds'), '.2f')} s, DB all succeeded after "
                    f"{fmt(q.get('db_all_succeeded_after_s'), '.2f')} s, received "
                    f"{q.get('received')}, dup {q.get('duplicates_at_receiver')}, publish prep "
                    f"{q.get('publish_prep_wall_s', 0):.2f} s; "
                    f"CPU s: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items() if v)
                )
            if scen.get("error"):
                add(f"  {broker} {label}: ERROR {scen['error']}")
        for broker, label, scen in tp_rows:
            q = scen.get("qcluster", {})
            other = q.get("cpu_s", {}).get("other")
            if other is not None and q.get("seconds") and other > 0.1 * q["seconds"] * CPUS:
                add(
                    f"  WARNING {broker} {label}: {other:.1f} CPU s went to other processes "
                    "during the run (machine not idle): figures are disturbed"
                )
        add("")

    lat_rows = [
        (broker, part["scenarios"]["lat"])
        for broker, part in delivery.items()
        if "lat" in part.get("scenarios", {})
    ]
    if lat_rows:
        first = lat_rows[0][1]
        add(
            "4. end-to-end latency — publish commit -> receiver arrival, "
            f"{first['rate_per_s']:.0f} "
            f"events/s x {first['duration_s']:.0f} s, one event per transaction, 1 endpoint, "
            "receiver 0 ms (ms)"
        )
        add(
            f"  {'broker':6} {'events':>6} {'lost':>4} {'p50':>7} {'p95':>7} {'p99':>7} "
            f"{'max':>7} {'target':>16}"
        )
        for broker, scen in lat_rows:
            lat = scen.get("latency_ms") or {}
            limit = TARGETS["p50_redis_ms"] if broker == "redis" else TARGETS["p50_orm_ms"]
            p50 = lat.get("p50")
            add(
                f"  {broker:6} {scen.get('events', 0):>6} {scen.get('lost', '—'):>4} "
                f"{fmt(p50, '.1f'):>7} {fmt(lat.get('p95'), '.1f'):>7} "
                f"{fmt(lat.get('p99'), '.1f'):>7} "
                f"{fmt(lat.get('max'), '.1f'):>7} "
                f"{target_text('p50<', limit, p50, lambda v, t: v < t):>16}"
            )
        for broker, scen in lat_rows:
            cpu = scen.get("cpu_s", {})
            if cpu:
                add(
                    f"  {broker}: CPU s during the test: "
                    + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items() if v)
                )
            other = cpu.get("other")
            if other is not None and other > 0.1 * scen.get("wall_s", 1) * CPUS:
                add(
                    f"  WARNING {broker} latency: {other:.1f} CPU s went to other processes "
                    "during the test (machine not idle)"
                )
        add("")

    if tp_rows:
        add(
            f"5. qcluster processes at the end of each throughput run — VmRSS (peak VmHWM), MB; "
            f"target < {TARGETS['worker_rss_mb']:.0f} MB per worker"
        )
        for broker, label, scen in tp_rows:
            procs = scen.get("qcluster", {}).get("processes", [])
            if not procs:
                continue
            parts = []
            for p in procs:
                mark = ""
                if p["role"].startswith("worker"):
                    mark = "" if p["rss_mb"] < TARGETS["worker_rss_mb"] else " FAIL"
                parts.append(f"{p['role']} {p['rss_mb']:.0f} ({p['hwm_mb']:.0f}){mark}")
            add(
                f"  {broker} {label} ({procs[2]['identified_by'] if len(procs) > 2 else ''}): "
                + "; ".join(parts)
            )
        add("")

    anatomy = results.get("anatomy")
    if anatomy and anatomy.get("shapes"):
        add(
            f"6. worker task anatomy — deliveries.tasks.deliver() of one batch of "
            f"{anatomy['batch_size']} run in-process (no qcluster, no other load), receiver 0 ms; "
            f"median of {next(iter(anatomy['shapes'].values()))['runs']} tasks"
            + (
                f"; endpoints created with {anatomy['endpoint_fields']}"
                if anatomy.get("endpoint_fields")
                else ""
            )
        )
        add(
            f"  {'batch shape':13} {'task ms':>7} {'CPU ms':>6} {'CPU/deliv':>9} {'queries':>7} "
            f"{'commits':>7}  stage ms (calls): claim / attempts_record [endpoint_health] / "
            "transport.send summed over threads"
        )
        for shape, a in anatomy["shapes"].items():

            def stage(name, stages=a["stages"]):
                v = stages.get(name)
                return "—" if not v else f"{v['median_ms']:.1f} ({v['median_calls']:.0f})"

            add(
                f"  {shape:13} {a['median_task_ms']:>7.1f} {a['median_task_cpu_ms']:>6.1f} "
                f"{a['per_delivery_cpu_ms']:>9.2f} {a['queries']:>7} {a['commits']:>7}  "
                f"{stage('claim')} / {stage('attempts_record')} [{stage('endpoint_health')}] / "
                f"{stage('transport.send')}"
            )
        for shape, a in anatomy["shapes"].items():
            add(f"  SQL of one task, {shape}:")
            for q in a["query_shapes"][:8]:
                add(f"    {q['count']:>3} × {q['sql'][:140]}")
        add("")

    render_everyday(results, add)

    checks = results.get("checks", [])
    if checks:
        add("targets:")
        seen_rss = {}
        for c in checks:
            if c["target"].startswith("RSS"):
                seen_rss.setdefault("all", []).append(c)
                continue
            add(f"  {verdict(c['pass']):4} {c['target']} (measured {fmt(c['value'], '.2f')})")
        if seen_rss:
            rss = seen_rss["all"]
            worst = max(rss, key=lambda c: c["value"])
            ok = all(c["pass"] for c in rss)
            add(
                f"  {verdict(ok):4} RSS < {TARGETS['worker_rss_mb']:.0f} MB for every worker "
                f"process ({len(rss)} checked; largest {worst['value']:.1f} MB)"
            )
    errors = [
        f"{k}: {v['error']}"
        for k, v in {
            **{f"fanout {b}": d for b, d in results.get("fanout", {}).items()},
            **{f"delivery {b}": d for b, d in results.get("delivery", {}).items()},
            "anatomy": results.get("anatomy") or {},
            **{f"everyday {v}": d for v, d in results.get("everyday", {}).items()},
            **{
                f"everyday {v} {label}": scen
                for v, d in results.get("everyday", {}).items()
                for label, scen in d.get("scenarios", {}).items()
            },
        }.items()
        if isinstance(v, dict) and v.get("error")
    ]
    for e in errors:
        add(f"  ERROR {e}")
    return "\n".join(lines)


def fmt_lat(lat: dict, q: str, spec: str = ".1f") -> str:
    """A latency percentile; `>wait` when it falls among events that never arrived."""
    if lat.get(q) is None and lat.get(f"{q}_censored"):
        return ">wait"
    return fmt(lat.get(q), spec)


def render_everyday(results: dict, add) -> None:
    """Section 7: the everyday part (bench/everyday.py), every variant of the run."""
    every = results.get("everyday")
    if not every:
        return
    rows = [
        (variant, label, scen)
        for variant, part in every.items()
        for label, scen in part.get("scenarios", {}).items()
    ]
    conf = next((p.get("settings") for p in every.values() if p.get("settings")), {}) or {}
    tp = [r for r in rows if r[2].get("kind") == "throughput"]
    st = [r for r in rows if r[2].get("kind") == "steady"]
    n_events = next((s.get("events") for _v, _l, s in tp if s.get("events")), None)
    add(
        "7. everyday — one `with transaction.atomic(): publish()` per event from one thread "
        f"(bench/everyday.py); qcluster {conf.get('workers')} workers, batch "
        f"{conf.get('batch_size')}, send concurrency {conf.get('send_concurrency')}"
    )
    if tp:
        add(
            f"  (a) 1 endpoint / (b) 3 endpoints of one partner: N={fmt(n_events, ',d')} events; "
            "deliveries/s from the first commit until the receiver has all; publish/s = the "
            "publish loop alone; bare = the same signed requests, a requests.Session per thread, "
            "threads = max_in_flight per endpoint; lat = commit -> arrival"
        )
        add(
            f"  {'db/broker':10} {'scen':7} {'delay':>5} {'cap':>5} {'deliv':>6} "
            f"{'publish/s':>9} {'webhookhub/s':>12} {'bare/s':>7} {'ratio':>5} {'target':>16} "
            f"{'lat p50/p99 ms':>15} {'arrived':>11}"
        )
        for variant, label, scen in tp:
            if scen.get("error"):
                add(f"  {variant:10} {label:7} ERROR {scen['error'][:200]}")
                continue
            w = scen.get("webhookhub") or {}
            cap = f"{scen['max_in_flight']}" + (
                f"x{scen['endpoints']}" if scen.get("endpoints", 1) > 1 else ""
            )
            found = everyday_target(variant, scen)
            target = "—"
            if found:
                target = f"{found[3]} {verdict(found[2])}"
            lat = w.get("latency_ms") or {}
            add(
                f"  {variant:10} {label:7} {scen['delay_ms']:>3.0f}ms {cap:>5} {scen['n']:>6,} "
                f"{fmt(w.get('publish_per_s')):>9} {fmt(w.get('deliveries_per_s')):>12} "
                f"{fmt((scen.get('bare') or {}).get('deliveries_per_s')):>7} "
                f"{fmt(scen.get('ratio'), '.2f'):>5} {target:>16} "
                f"{fmt_lat(lat, 'p50', '.0f'):>7}/{fmt_lat(lat, 'p99', '.0f'):<7} "
                f"{w.get('received', 0):>5}/{scen['n']:<5}"
            )
            if w and not w.get("complete"):
                add(f"  {'':10} {label}: INCOMPLETE — {w.get('wait_ended')}")
    if st:
        first = st[0][2]
        add(
            f"  (c) steady open loop, one event per transaction, 1 endpoint (max_in_flight "
            f"{first.get('max_in_flight')}), receiver 0 ms, {fmt(first.get('duration_s'), '.0f')} "
            "s; commit -> arrival (ms); keeps up = all delivered within 5 s of the last publish"
        )
        add(
            f"  {'db/broker':10} {'rate':>5} {'offered/s':>9} {'delivered/s':>11} {'events':>6} "
            f"{'lost':>4} {'late':>4} {'p50':>6} {'p95':>6} {'p99':>6} {'max':>6} "
            f"{'publish ms':>10} {'keeps up':>8}  targets"
        )
        add(
            "  (offered = events/s the publisher achieved; delivered/s = arrivals while it was "
            "publishing; late = arrived after the 5 s grace; max = of the arrived)"
        )
        for variant, label, scen in st:
            if scen.get("error"):
                add(f"  {variant:10} {label:7} ERROR {scen['error'][:200]}")
                continue
            lat = scen.get("latency_ms") or {}
            p50_limit, p99_limit = everyday_latency_limits(variant)
            late = scen.get("received", 0) - scen.get("delivered_within_grace", 0)
            add(
                f"  {variant:10} {scen['rate']:>4.0f}/s {fmt(scen.get('offered_per_s')):>9} "
                f"{fmt(scen.get('delivered_per_s_while_publishing')):>11} "
                f"{scen.get('events', 0):>6} {scen.get('lost', 0):>4} {late:>4} "
                f"{fmt_lat(lat, 'p50'):>6} {fmt_lat(lat, 'p95'):>6} "
                f"{fmt_lat(lat, 'p99'):>6} {fmt(lat.get('max_arrived'), '.0f'):>6} "
                f"{fmt((scen.get('publish_commit_ms') or {}).get('p50'), '.1f'):>10} "
                f"{verdict(scen.get('keeps_up')):>8}  "
                f"{target_text('p50<', p50_limit, lat.get('p50'), lambda v, t: v < t)}, "
                f"{target_text('p99<', p99_limit, lat.get('p99'), lambda v, t: v < t)}"
            )
    cpu_rows = [
        (variant, scen)
        for variant, label, scen in tp
        if label == "a0_c32" and (scen.get("webhookhub") or {}).get("cpu")
    ]
    if cpu_rows:
        limit = TARGETS["everyday_cpu_ms_per_delivery"]
        add(
            "  (e) CPU seconds per 1,000 deliveries, a0_c32 (1 endpoint, 0 ms, max_in_flight 32), "
            "first publish -> last arrival; ms/deliv = cluster + PostgreSQL + Redis + publisher "
            "(CPU s per 1,000 = ms per delivery); the receiver (the partner) is not counted"
        )
        add(
            f"  {'db/broker':10} {'cluster':>7} {'postgres':>8} {'redis':>6} {'publisher':>9} "
            f"{'= ms/deliv':>10} {'target':>11} {'receiver':>8} {'other':>6}  "
            "idle before (CPU s/s: cluster, postgres)"
        )
        for variant, scen in cpu_rows:
            cpu = scen["webhookhub"]["cpu"]
            per = cpu["per_1000_s"]
            ms = cpu.get("ms_per_delivery")
            add(
                f"  {variant:10} {per.get('qcluster', 0):>7.2f} {per.get('postgres', 0):>8.2f} "
                f"{per.get('redis', 0):>6.2f} {per.get('publisher', 0):>9.2f} "
                f"{ms:>10.2f} "
                f"{target_text('<=', limit, ms, lambda v, t: v <= t):>11} "
                f"{per.get('receiver', 0):>8.2f} {per.get('other', 0):>6.2f}  "
                + (
                    f"{idle.get('qcluster', 0):.2f}, {idle.get('postgres', 0):.2f}"
                    if (idle := scen.get("idle_cpu_per_s"))
                    else "—"
                )
            )
    rss_lines = []
    for variant in every:
        roles: dict[str, list[tuple[float, float]]] = {}
        respawned = 0
        for _v, _label, scen in [r for r in tp if r[0] == variant and r[2].get("shape") == "a"]:
            w = scen.get("webhookhub") or {}
            respawned += len(w.get("cluster_pids_new_during_run") or [])
            for p in w.get("processes", []):
                role = "worker" if p["role"].startswith("worker") else p["role"].split(" ")[0]
                roles.setdefault(role, []).append((p["rss_mb"], p["hwm_mb"]))
        if roles:
            parts = [
                f"{role} {max(v[0] for v in vals):.0f} ({max(v[1] for v in vals):.0f})"
                for role, vals in roles.items()
            ]
            worst = max(v[0] for v in roles.get("worker", [(0, 0)]))
            mark = verdict(worst < TARGETS["worker_rss_mb"]) if "worker" in roles else "n/a"
            rss_lines.append(
                f"  {variant:10} " + "; ".join(parts) + f" — worker < "
                f"{TARGETS['worker_rss_mb']:.0f} MB {mark}; processes new during the runs "
                f"(recycled workers): {respawned}"
            )
    if rss_lines:
        add(
            "  (f) RSS at the end of each shape-(a) run, MB, max over those runs per role "
            "(peak VmHWM)"
        )
        for line in rss_lines:
            add(line)
    disturbed = []
    for variant, label, scen in rows:
        part = scen.get("webhookhub") or scen
        other, wall = (part.get("cpu_s") or {}).get("other"), part.get("cpu_wall_s")
        if other is not None and wall and other > 0.1 * wall * CPUS:
            disturbed.append(f"{variant} {label} {100 * other / (wall * CPUS):.0f}%")
    if disturbed:
        add(
            "  WARNING machine not idle — share of the CPU time used by other processes during "
            "these runs (> 10 %: figures disturbed): " + ", ".join(disturbed)
        )
    for variant, label, scen in rows:
        problems = scen.get("cluster_log_problems") or []
        if problems:
            add(
                f"  {variant} {label}: {len(problems)} WARNING+ lines in the qcluster log, last: "
                f"{problems[-1][:160]}"
            )
    add("")


# --- main ---------------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    stamp = datetime.now(UTC)
    from cryptography.fernet import Fernet

    extra = {}
    if args.workers is not None:
        extra["WEBHOOKHUB_Q_WORKERS"] = str(args.workers)
    if args.batch_size is not None:
        extra["WEBHOOKHUB_DELIVERY_BATCH_SIZE"] = str(args.batch_size)
    if args.send_concurrency is not None:
        extra["WEBHOOKHUB_SEND_CONCURRENCY"] = str(args.send_concurrency)
    env = base_env(
        pg=args.pg, db_name=args.db_name, fernet_key=Fernet.generate_key().decode(), extra=extra
    )
    results: dict = {
        "meta": {
            "started_utc": stamp.isoformat(timespec="seconds"),
            "args": vars(args),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "servers": server_versions(args.pg, args.redis_url),
            "database": f"{args.pg.rstrip('/')}/{args.db_name}",
            "redis_url": args.redis_url,
            "code": code_fingerprint(),
            "loadavg_before": loadavg(),
        },
        "targets": TARGETS,
    }
    brokers = list(args.broker_list)
    if "redis" in brokers and str(results["meta"]["servers"]["redis"]).startswith("unavailable"):
        print("Redis unavailable: skipping the Redis broker", file=sys.stderr)
        brokers.remove("redis")
        results["meta"]["skipped"] = "redis broker (server unavailable)"

    print(f"== fresh database {args.db_name} (drop + create + migrate)", flush=True)
    try:
        results["meta"]["db_setup_s"] = round(recreate_database(args.pg, args.db_name, env), 1)
    except subprocess.CalledProcessError as exc:
        print(f"`manage.py migrate` failed ({exc}): the project does not load; nothing measured.")
        return 2

    receiver_proc, receiver = start_receiver(0.0)
    children_env = {**env}

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    tmp = LOGS / f"parts-{stamp.strftime('%Y%m%dT%H%M%SZ')}"
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        if "fanout" in args.parts:
            results["fanout"] = {}
            for broker in brokers:
                print(f"== publish_fanout ({broker} broker)", flush=True)
                results["fanout"][broker] = run_child(
                    "bench.publish_fanout",
                    [
                        "--sizes",
                        args.fanout_sizes,
                        "--runs",
                        str(args.fanout_runs),
                        "--url",
                        receiver.hook_url,
                    ],
                    broker_env(children_env, broker, args.redis_url),
                    tmp / f"fanout-{broker}.json",
                )
        if "receiver" in args.parts:
            print("== receiver ceiling", flush=True)
            results["receiver"] = [
                receiver_ceiling(
                    receiver,
                    receiver_proc.pid,
                    delay_ms=0,
                    procs=2,
                    conns=32,
                    seconds=2 if args.quick else 3,
                ),
                receiver_ceiling(
                    receiver,
                    receiver_proc.pid,
                    delay_ms=args.delay_ms,
                    procs=2,
                    conns=128,
                    seconds=2 if args.quick else 3,
                ),
            ]
        scenarios = []
        if "throughput" in args.parts:
            scenarios += ["tp0", "tp50"]
        if "latency" in args.parts:
            scenarios.append("lat")
        if scenarios:
            results["delivery"] = {}
            for broker in brokers:
                print(f"== delivery ({broker} broker): {', '.join(scenarios)}", flush=True)
                child_args = [
                    "--receiver",
                    receiver.base_url,
                    "--receiver-pid",
                    str(receiver_proc.pid),
                    "--scenarios",
                    ",".join(scenarios),
                    "--n",
                    str(args.n),
                    "--endpoints",
                    str(args.endpoints),
                    "--txns",
                    str(args.txns),
                    "--rate",
                    str(args.rate),
                    "--duration",
                    str(args.duration),
                    "--delay-ms",
                    str(args.delay_ms),
                    "--bare",
                    args.bare,
                ]
                if args.profile:
                    child_args.append("--profile")
                if args.hold_dispatcher:
                    child_args.append("--hold-dispatcher")
                results["delivery"][broker] = run_child(
                    "bench.delivery",
                    child_args,
                    broker_env(children_env, broker, args.redis_url),
                    tmp / f"delivery-{broker}.json",
                )
                results["config"] = results["delivery"][broker].get("settings", {})
        if "everyday" in args.parts:
            results["everyday"] = {}
            variants = [
                (f"pg/{b}", broker_env(children_env, b, args.redis_url), None) for b in brokers
            ]
            if args.everyday_sqlite:
                sqlite_env = broker_env(children_env, "orm", args.redis_url)
                sqlite_env["DATABASE_URL"] = (
                    f"sqlite:///{Path(args.everyday_sqlite_file).resolve()}"
                )
                variants.append(("sqlite/orm", sqlite_env, args.everyday_sqlite_file))
            wanted = [s.strip() for s in args.everyday_scenarios.split(",") if s.strip()]
            for variant, child_env, sqlite_file in variants:
                scenarios = (
                    [s for s in wanted if s in EVERYDAY_SQLITE_SCENARIOS] if sqlite_file else wanted
                )
                if not scenarios:
                    continue
                print(f"== everyday ({variant}): {', '.join(scenarios)}", flush=True)
                child_args = [
                    "--receiver",
                    receiver.base_url,
                    "--receiver-pid",
                    str(receiver_proc.pid),
                    "--variant",
                    variant,
                    "--scenarios",
                    ",".join(scenarios),
                    "--n",
                    str(args.everyday_n),
                    "--duration",
                    str(args.everyday_duration),
                    "--delay-ms",
                    str(args.delay_ms),
                    "--timeout",
                    str(args.everyday_timeout),
                ]
                if sqlite_file:
                    child_args += ["--sqlite-file", str(Path(sqlite_file).resolve())]
                results["everyday"][variant] = run_child(
                    "bench.everyday",
                    child_args,
                    child_env,
                    tmp / f"everyday-{variant.replace('/', '-')}.json",
                )
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        results["meta"]["interrupted"] = True
    finally:
        stop_process_group(receiver_proc, term_first=True)

    results["checks"] = evaluate(results)
    results["meta"]["elapsed_s"] = time.monotonic() - started
    results["meta"]["loadavg_after"] = loadavg()
    table = render(results)
    results["table"] = table.splitlines()
    name = f"{args.name}-{stamp.strftime('%Y%m%dT%H%M%SZ')}.json"
    write_json(RESULTS / name, results)
    write_json(RESULTS / "latest.json", results)
    print()
    print(table)
    print(f"\nresults: bench/results/{name} (and bench/results/latest.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
