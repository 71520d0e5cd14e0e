"""The everyday workload: one `publish()` per transaction, through a real qcluster.

Runs in its own process, for one database/broker variant (PostgreSQL or SQLite from
DATABASE_URL, Redis or the ORM broker from REDIS_URL). Every scenario empties the bench
tables and queues, creates one partner and its endpoints (subscribed to `bench.event`),
starts a fresh `manage.py qcluster` in its own process group, waits until it delivers
(a readiness event, then a warm-up of one-event transactions), measures, and SIGKILLs
the group. Only public interfaces are used: endpoints.services.partner_create /
endpoint_create, events.services.publish and the EventType model.

Scenarios (`--scenarios`):
  a<D>_c<M>  N events (`--n`) to one endpoint, each `with transaction.atomic(): publish()`
             from this process (one thread); receiver at D ms, the endpoint's
             max_in_flight M (`c10` = the model default, not passed). Timed: first commit
             -> the receiver has all N. Also the publish loop alone, CPU by process
             (cluster, PostgreSQL, Redis, this publisher, the receiver) and the RSS of
             every cluster process at the end.
  b0_x3      the same loop, N events to the partner's three endpoints (3N deliveries),
             receiver 0 ms, max_in_flight default.
  c<R>       open loop: one event per transaction at R events/s for `--duration` s to one
             endpoint (published on a schedule, not waiting for delivery); latency =
             receiver arrival - commit (an on_commit callback registered before
             publish() marks the commit); keeps up = all delivered within 5 s of the
             last publish.
After every throughput scenario (a, b), with the cluster gone: the same number of
signed requests to the same URLs with the same receiver delay from a bare client,
a ThreadPoolExecutor per endpoint with as many threads as the endpoint's max_in_flight,
a requests.Session per thread.

python -m bench.everyday --receiver http://127.0.0.1:PORT --out x.json [--sqlite-file F]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from bench.common import (
    PYTHON,
    ROOT,
    Cluster,
    Receiver,
    cluster_processes,
    django_setup,
    loadavg,
    percentile,
    pids_by_comm,
    postgres_pids,
    proc_cpu_seconds,
    process_tree,
    reset_data_any_db,
    tree_cpu_delta,
    tree_cpu_snapshot,
    write_json,
)

PAD = "x" * 120
EVENT_TYPE = "bench.event"
DEFAULT_SCENARIOS = "a0_c10,a0_c32,a50_c10,a50_c32,b0_x3,c50,c200"
KEEP_UP_GRACE_S = 5.0
WARMUP_EVENTS = 40


def parse_scenario(label: str, slow_ms: float) -> dict:
    """a0_c10 / a50_c32 / b0_x3 / c200 -> what to run (a's and b's delay: 0 or slow_ms)."""
    m = re.fullmatch(r"a(\d+)_c(\d+)", label)
    if m:
        delay = float(m.group(1))
        return {
            "kind": "throughput",
            "shape": "a",
            "delay_ms": delay if delay == 0 else slow_ms,
            "endpoints": 1,
            "max_in_flight": int(m.group(2)),
        }
    m = re.fullmatch(r"b(\d+)_x(\d+)", label)
    if m:
        delay = float(m.group(1))
        return {
            "kind": "throughput",
            "shape": "b",
            "delay_ms": delay if delay == 0 else slow_ms,
            "endpoints": int(m.group(2)),
            "max_in_flight": None,
        }
    m = re.fullmatch(r"c(\d+)", label)
    if m:
        return {"kind": "steady", "shape": "c", "rate": float(m.group(1)), "delay_ms": 0.0}
    raise SystemExit(f"unknown everyday scenario {label!r}")


def settings_summary() -> dict:
    from django.conf import settings
    from django.db import connection

    q = settings.Q_CLUSTER
    return {
        "database": connection.vendor,
        "broker": "redis" if getattr(settings, "REDIS_URL", "") else "orm",
        "workers": q.get("workers"),
        "batch_size": getattr(settings, "WEBHOOKHUB_DELIVERY_BATCH_SIZE", None),
        "send_concurrency": getattr(settings, "WEBHOOKHUB_SEND_CONCURRENCY", None),
        "queue_limit": q.get("queue_limit"),
        "poll": q.get("poll"),
        "recycle": q.get("recycle"),
        "max_rss_kb": q.get("max_rss"),
    }


# --- world, cluster, waiting ----------------------------------------------------------------


def make_world(receiver: Receiver, *, endpoints: int, max_in_flight: int | None, prefix: str):
    """Empty tables and queues; one partner, `endpoints` endpoints on the receiver."""
    from endpoints.services import endpoint_create, partner_create
    from events.models import EventType

    reset_data_any_db()
    EventType.objects.create(name=EVENT_TYPE, description="benchmark")
    partner = partner_create(name="bench everyday")
    fields = {} if max_in_flight is None else {"max_in_flight": max_in_flight}
    made = [
        endpoint_create(
            partner,
            name=f"bench {prefix}{i}",
            url=f"{receiver.base_url}/hook/{prefix}{i}",
            event_types=[EVENT_TYPE],
            by="bench",
            **fields,
        )
        for i in range(1, endpoints + 1)
    ]
    return partner, made


def url_path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def keys_for(event_ids, endpoints) -> list[str]:
    paths = [url_path(e.url) for e in endpoints]
    return [f"{path} {event_id}" for event_id in event_ids for path in paths]


def publish_txn(i: int, partner, source: str) -> tuple[str, float]:
    """One `with transaction.atomic(): publish(...)`; (event id, commit time)."""
    from django.db import transaction

    from events.services import publish

    mark: dict = {}
    with transaction.atomic():
        transaction.on_commit(lambda m=mark: m.setdefault("t", time.time()))
        event = publish(EVENT_TYPE, {"n": i, "pad": PAD}, partner=partner, source=source)
    return event.public_id, mark["t"]


def wait_keys(
    receiver: Receiver, keys, *, timeout: float, cluster: Cluster | None = None
) -> tuple[dict[str, float], str]:
    """Wait until the receiver has every key, the timeout passes or the cluster exits;
    return what arrived and why the wait ended."""
    wanted = set(keys)
    deadline = time.monotonic() + timeout
    while True:
        stats = receiver.stats()
        done = stats["unique"] >= len(wanted)
        timed_out = time.monotonic() > deadline
        dead = cluster is not None and not cluster.alive()
        if done or timed_out or dead:
            arrivals = receiver.arrivals()
            got = {k: arrivals[k] for k in wanted if k in arrivals}
            if len(got) == len(wanted):
                return got, "complete"
            if timed_out:
                return got, f"timeout after {timeout:.0f} s"
            if dead:
                return got, f"qcluster exited with {cluster.process.returncode}"
        time.sleep(0.05)


def start_ready_cluster(label: str, conf: dict, receiver: Receiver, partner, endpoints) -> tuple:
    """A fresh qcluster; one readiness event, then WARMUP_EVENTS one-event transactions
    (the same shape as the measurement, so the workers have run tasks and opened their
    connections). Raises if nothing arrives within 120 s."""
    cluster = Cluster(dict(os.environ), f"qcluster-everyday-{conf['variant']}-{label}.log")
    started = time.monotonic()
    try:
        eid, _ = publish_txn(-1, partner, "bench-ready")
        _got, why = wait_keys(receiver, keys_for([eid], endpoints), timeout=120, cluster=cluster)
        if why != "complete":
            raise RuntimeError(
                f"qcluster not ready ({why}); log: {cluster.log_path}\n"
                + "\n".join(cluster.log_problems()[-20:])
            )
        ready_s = time.monotonic() - started
        ids = [publish_txn(-2 - i, partner, "bench-warmup")[0] for i in range(WARMUP_EVENTS)]
        _got, why = wait_keys(receiver, keys_for(ids, endpoints), timeout=120, cluster=cluster)
        if why != "complete":
            raise RuntimeError(f"warm-up incomplete ({why}); log: {cluster.log_path}")
        time.sleep(0.3)
        receiver.reset()
    except BaseException:
        cluster.kill()
        raise
    return cluster, ready_s


def cluster_stat(cluster_pid: int) -> dict | None:
    """django-q2's own record of the cluster's pids (only the Redis broker shares it)."""
    from django.conf import settings

    if not getattr(settings, "REDIS_URL", ""):
        return None
    from django_q.status import Stat

    for stat in Stat.get_all():
        if stat.pid == cluster_pid:
            return {"workers": stat.workers, "monitor": stat.monitor, "pusher": stat.pusher}
    return None


def cpu_groups(cluster: Cluster | None, receiver_pid: int | None) -> dict[str, list[int]]:
    """The process groups whose CPU is read from /proc (PostgreSQL: see PgCpuSampler)."""
    groups: dict[str, list[int]] = {"publisher": [os.getpid()]}
    if cluster is not None:
        groups["qcluster"] = process_tree(cluster.pid)
    groups["redis"] = pids_by_comm("redis-server")
    if receiver_pid:
        groups["receiver"] = [receiver_pid]
    return groups


class PgCpuSampler(threading.Thread):
    """CPU of the PostgreSQL server's own processes and of the bench database's
    backends, sampled every `interval` s: a backend that exits (a recycled worker's
    connection) counts up to its last sample. Not the postmaster's reaped-children CPU,
    and no backend of another database: a test suite may share the server."""

    def __init__(self, db_name: str, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.db_name = db_name
        self.interval = interval
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.sample(initial=True)

    def sample(self, initial: bool = False) -> None:
        for pid in postgres_pids(self.db_name):
            cpu = proc_cpu_seconds(pid)
            if cpu is None:
                continue
            with self.lock:
                # a backend first seen after the start began after it: it counts from 0
                self.first.setdefault(pid, cpu if initial else 0.0)
                self.last[pid] = cpu

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.sample()

    def seconds(self) -> float:
        self.sample()
        with self.lock:
            return sum(self.last[pid] - self.first[pid] for pid in self.last)

    def finish(self) -> float:
        self.stop_event.set()
        self.join(5)
        return self.seconds()


class CpuMeter:
    """CPU seconds by group over a window: tree_cpu_snapshot/tree_cpu_delta for the
    cluster (its recycled workers through the sentinel's reaped-children CPU), Redis,
    the publisher and the receiver; PgCpuSampler for PostgreSQL; `other` = the rest of
    the machine's busy CPU (other people's processes)."""

    def __init__(self, cluster: Cluster | None, receiver_pid: int | None, db_name: str) -> None:
        self.cluster, self.receiver_pid = cluster, receiver_pid
        self.before = tree_cpu_snapshot(cpu_groups(cluster, receiver_pid))
        self.pg = PgCpuSampler(db_name)
        self.pg.start()

    def _delta(self, pg_seconds: float) -> dict[str, float]:
        after = tree_cpu_snapshot(cpu_groups(self.cluster, self.receiver_pid))
        out = tree_cpu_delta(self.before, after)
        out["postgres"] = round(pg_seconds, 3)
        if "other" in out:
            out["other"] = round(out["other"] - pg_seconds, 3)
        return out

    def read(self) -> dict[str, float]:
        return self._delta(self.pg.seconds())

    def stop(self) -> dict[str, float]:
        return self._delta(self.pg.finish())


def cpu_summary(cpu: dict, deliveries: int) -> dict:
    """CPU s per 1,000 deliveries by process group; ms per delivery of ours together
    (cluster + PostgreSQL + Redis + publisher; the receiver plays the partner)."""
    ours = ("qcluster", "postgres", "redis", "publisher")
    total = sum(cpu.get(k, 0.0) for k in ours)
    if not deliveries:
        return {}
    return {
        "per_1000_s": {k: round(v * 1000 / deliveries, 3) for k, v in cpu.items()},
        "ours_s": round(total, 3),
        "ms_per_delivery": total * 1000 / deliveries,
    }


def lat_summary(values: list[float], missing: int = 0) -> dict:
    """Percentiles of the latencies, counting `missing` (never arrived) events as
    infinitely late: a percentile that falls among them is None ("censored")."""
    data = sorted(values) + [math.inf] * missing
    out: dict = {"n": len(values), "missing": missing}
    for name, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        pos = (len(data) - 1) * q / 100.0 if data else 0
        if not data or data[min(len(data) - 1, math.ceil(pos))] == math.inf:
            out[name] = None
            out[f"{name}_censored"] = bool(data)
        else:
            out[name] = percentile(values if not missing else data, q)
    out["max"] = max(values) if values and not missing else None
    out["max_arrived"] = max(values) if values else None
    out["min"] = min(values) if values else None
    return out


def arrival_histogram(arrivals, t0: float, bin_s: float = 1.0) -> list[int]:
    bins: list[int] = []
    for t in arrivals:
        i = max(0, int((t - t0) / bin_s))
        while len(bins) <= i:
            bins.append(0)
        bins[i] += 1
    return bins


# --- bare client --------------------------------------------------------------------------------


def _sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks v1 signature (as the project signs; done here so that the
    bench does not depend on the engine's modules)."""
    encoded = secret.strip().removeprefix("whsec_")
    key = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def bare(receiver: Receiver, endpoints, *, events: int, threads_per_endpoint: list[int]) -> dict:
    """`events` x len(endpoints) signed requests (delivery-sized envelopes) to the same
    URLs, one ThreadPoolExecutor per endpoint with that endpoint's cap of threads, one
    requests.Session per thread. Timed: first send -> last arrival at the receiver."""
    import requests

    receiver.reset()
    secrets = []
    for e in endpoints:
        secret = getattr(e, "signing_secret", "") or ""
        secrets.append(secret if secret.startswith("whsec_") else "whsec_" + "A" * 44)
    jobs: list[list[tuple]] = [[] for _ in endpoints]
    keys = []
    for i in range(events):
        msg_id = f"msg_bare{i:07d}{os.getpid()}"
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = json.dumps(
            {"id": msg_id, "type": EVENT_TYPE, "timestamp": stamp, "data": {"n": i, "pad": PAD}},
            separators=(",", ":"),
        ).encode()
        for j, endpoint in enumerate(endpoints):
            jobs[j].append((endpoint.url, msg_id, body, secrets[j]))
            keys.append(f"{url_path(endpoint.url)} {msg_id}")
    local = threading.local()
    sessions: list = []
    sessions_lock = threading.Lock()

    def send(job) -> int:
        url, msg_id, body, secret = job
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            with sessions_lock:
                sessions.append(session)
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": _sign(secret, msg_id, ts, body),
        }
        try:
            return session.post(url, data=body, headers=headers, timeout=(5, 15)).status_code
        except requests.RequestException:
            return 0

    pools = [ThreadPoolExecutor(max_workers=t) for t in threads_per_endpoint]
    started = time.time()
    futures = [
        pool.submit(send, job)
        for batch in zip(*jobs, strict=True)
        for pool, job in zip(pools, batch, strict=True)
    ]
    codes = [f.result() for f in futures]
    finished = time.time()
    for pool in pools:
        pool.shutdown()
    for session in sessions:
        session.close()
    got, _why = wait_keys(receiver, keys, timeout=30)
    last = max(got.values()) if got else finished
    ok = sum(1 for c in codes if c == 200)
    seconds = last - started
    return {
        "client": "requests.Session per thread, one ThreadPoolExecutor per endpoint",
        "threads": threads_per_endpoint,
        "sent": len(keys),
        "ok": ok,
        "received": len(got),
        "seconds": seconds,
        "deliveries_per_s": len(keys) / seconds if ok == len(keys) == len(got) else None,
    }


# --- scenarios -------------------------------------------------------------------------------


def throughput(args, receiver: Receiver, label: str, spec: dict, conf: dict) -> dict:
    n_events = args.n
    receiver.set_delay(spec["delay_ms"])
    partner, endpoints = make_world(
        receiver, endpoints=spec["endpoints"], max_in_flight=spec["max_in_flight"], prefix=label
    )
    caps = [e.max_in_flight for e in endpoints]
    n = n_events * len(endpoints)
    result: dict = {
        "scenario": label,
        **spec,
        "max_in_flight": caps[0],
        "max_in_flight_passed": spec["max_in_flight"] is not None,
        "events": n_events,
        "n": n,
        "loadavg_before": loadavg(),
    }
    cluster, result["ready_s"] = start_ready_cluster(label, conf, receiver, partner, endpoints)
    result["cluster_log"] = str(cluster.log_path)
    try:
        source = f"bench-{label}"
        if label == "a0_c32" and args.idle_s > 0:
            # What the warmed-up cluster burns doing nothing (polling, dispatcher loop):
            # part of every CPU figure below, so shown next to them.
            idle_meter = CpuMeter(cluster, args.receiver_pid, conf["pg_db"])
            time.sleep(args.idle_s)
            idle = idle_meter.stop()
            result["idle_cpu_per_s"] = {k: round(v / args.idle_s, 3) for k, v in idle.items()}
        workers_before = set(process_tree(cluster.pid))
        meter = CpuMeter(cluster, args.receiver_pid, conf["pg_db"])
        cpu_t0 = time.time()
        commits: dict[str, float] = {}
        t0 = time.perf_counter()
        for i in range(n_events):
            eid, committed = publish_txn(i, partner, source)
            commits[eid] = committed
        publish_s = time.perf_counter() - t0
        cpu_published = meter.read()
        keys = keys_for(list(commits), endpoints)
        got, why = wait_keys(receiver, keys, timeout=args.timeout, cluster=cluster)
        cpu = meter.stop()
        cpu_wall = time.time() - cpu_t0
        stats = receiver.stats()
        processes = cluster_processes(
            cluster.pid,
            workers=conf["workers"] or 4,
            stat=cluster_stat(cluster.pid),
            receiver_port=int(receiver.base_url.rsplit(":", 1)[1]),
        )
        first_commit = min(commits.values())
        last_arrival = max(got.values()) if got else None
        seconds = (last_arrival - first_commit) if last_arrival else None
        complete = len(got) == n
        lat = [(t - commits[k.split(" ", 1)[1]]) * 1000 for k, t in got.items()]
        missing = n - len(got)
        result["webhookhub"] = {
            "received": len(got),
            "complete": complete,
            "wait_ended": why,
            "seconds": seconds,
            "deliveries_per_s": n / seconds if seconds and complete else None,
            "received_per_s": len(got) / seconds if seconds else None,
            "duplicates_at_receiver": stats["duplicates"],
            "publish_loop_s": publish_s,
            "publish_per_s": n_events / publish_s,
            "publish_ms_per_event": publish_s * 1000 / n_events,
            "drain_after_publish_s": (last_arrival - (first_commit + publish_s))
            if last_arrival
            else None,
            "latency_ms": lat_summary(lat, missing),
            "cpu_s": cpu,
            "cpu_wall_s": cpu_wall,
            "cpu_during_publish_loop_s": cpu_published,
            "cpu": cpu_summary(cpu, len(got)),
            "arrivals_per_s": arrival_histogram(got.values(), first_commit),
            "processes": processes,
            "cluster_pids_new_during_run": sorted(set(process_tree(cluster.pid)) - workers_before),
        }
    finally:
        cluster.kill()
        result["cluster_log_problems"] = cluster.log_problems()[-20:]
    result["bare"] = bare(receiver, endpoints, events=n_events, threads_per_endpoint=caps)
    w, b = result["webhookhub"]["deliveries_per_s"], result["bare"]["deliveries_per_s"]
    result["ratio"] = (w / b) if w and b else None
    if spec["delay_ms"] > 0:
        result["cap_ceiling_per_s"] = sum(caps) / (spec["delay_ms"] / 1000.0)
    result["loadavg_after"] = loadavg()
    return result


def steady(args, receiver: Receiver, label: str, spec: dict, conf: dict) -> dict:
    rate = spec["rate"]
    receiver.set_delay(0)
    partner, endpoints = make_world(receiver, endpoints=1, max_in_flight=None, prefix=label)
    total = int(rate * args.duration)
    result: dict = {
        "scenario": label,
        **spec,
        "duration_s": args.duration,
        "events": total,
        "max_in_flight": endpoints[0].max_in_flight,
        "loadavg_before": loadavg(),
    }
    cluster, result["ready_s"] = start_ready_cluster(label, conf, receiver, partner, endpoints)
    result["cluster_log"] = str(cluster.log_path)
    try:
        source = f"bench-{label}"
        commits: dict[str, float] = {}
        publish_ms: list[float] = []
        behind = 0
        interval = 1.0 / rate
        meter = CpuMeter(cluster, args.receiver_pid, conf["pg_db"])
        cpu_t0 = time.time()
        started = time.monotonic()
        for i in range(total):
            pause = started + i * interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            elif pause < -interval:
                behind += 1  # more than one interval late
            t0 = time.perf_counter()
            eid, committed = publish_txn(i, partner, source)
            publish_ms.append((time.perf_counter() - t0) * 1000)
            commits[eid] = committed
        first_commit, last_commit = min(commits.values()), max(commits.values())
        keys = {f"{url_path(endpoints[0].url)} {eid}": eid for eid in commits}
        # Keeps up: everything within KEEP_UP_GRACE_S of the last publish; then wait up
        # to --straggler-wait s more so that the latency figures cover the late ones
        # (events still missing then count as infinitely late in the percentiles).
        got, why = wait_keys(
            receiver,
            list(keys),
            timeout=max(0.0, last_commit + KEEP_UP_GRACE_S - time.time()) + args.straggler_wait,
            cluster=cluster,
        )
        cpu = meter.stop()
        cpu_wall = time.time() - cpu_t0
        stats = receiver.stats()
    finally:
        cluster.kill()
        result["cluster_log_problems"] = cluster.log_problems()[-20:]
    lat = [(t - commits[keys[k]]) * 1000 for k, t in got.items()]
    in_time = sum(1 for t in got.values() if t <= last_commit + KEEP_UP_GRACE_S)
    during = sum(1 for t in got.values() if t <= last_commit)
    span = last_commit - first_commit
    last_arrival = max(got.values()) if got else None
    result.update(
        {
            "offered_per_s": (total - 1) / span if span > 0 else None,
            "delivered_per_s_while_publishing": during / span if span > 0 else None,
            "received": len(got),
            "lost": total - len(got),
            "delivered_within_grace": in_time,
            "keeps_up": in_time == total,
            "wait_ended": why,
            "last_arrival_after_last_commit_s": (last_arrival - last_commit)
            if last_arrival
            else None,
            "publishes_behind_schedule": behind,
            "duplicates_at_receiver": stats["duplicates"],
            "latency_ms": lat_summary(lat, total - len(got)),
            "publish_commit_ms": {
                "p50": percentile(publish_ms, 50),
                "p99": percentile(publish_ms, 99),
                "max": max(publish_ms) if publish_ms else None,
            },
            "cpu_s": cpu,
            "cpu_wall_s": cpu_wall,
            "cpu": cpu_summary(cpu, len(got)),
            "arrivals_per_s": arrival_histogram(got.values(), first_commit),
        }
    )
    result["loadavg_after"] = loadavg()
    return result


def fresh_sqlite(path: Path) -> float:
    """Delete the SQLite file (and its WAL) and migrate it; returns seconds."""
    started = time.monotonic()
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=dict(os.environ),
        check=True,
    )
    return time.monotonic() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receiver", required=True, help="receiver base URL")
    parser.add_argument("--receiver-pid", type=int, default=None)
    parser.add_argument("--out", required=True)
    parser.add_argument("--variant", default="", help="label, e.g. pg/orm (results only)")
    parser.add_argument("--scenarios", default=DEFAULT_SCENARIOS)
    parser.add_argument("--n", type=int, default=2000, help="events per throughput scenario")
    parser.add_argument("--duration", type=float, default=15.0, help="steady scenarios, s")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="the slow receiver's delay")
    parser.add_argument("--timeout", type=float, default=120.0, help="wait for deliveries, s")
    parser.add_argument(
        "--straggler-wait",
        type=float,
        default=30.0,
        help="steady: after the 5 s grace, wait this long for late deliveries (latency)",
    )
    parser.add_argument(
        "--idle-s", type=float, default=2.0, help="a0_c32: measure the idle cluster's CPU first"
    )
    parser.add_argument("--sqlite-file", default=None, help="delete + migrate this file first")
    args = parser.parse_args(argv)
    out: dict = {"scenarios": {}}
    if args.sqlite_file:
        out["sqlite_setup_s"] = round(fresh_sqlite(Path(args.sqlite_file)), 1)
    django_setup()
    conf = settings_summary()
    from django.db import connection

    # PostgreSQL CPU: the server's own processes and this database's backends only.
    conf["pg_db"] = connection.settings_dict["NAME"] if connection.vendor == "postgresql" else ""
    conf["variant"] = (args.variant or f"{conf['database']}-{conf['broker']}").replace("/", "-")
    out["settings"] = conf
    receiver = Receiver(args.receiver)
    for label in [s.strip() for s in args.scenarios.split(",") if s.strip()]:
        spec = parse_scenario(label, args.delay_ms)
        started = time.monotonic()
        try:
            if spec["kind"] == "throughput":
                res = throughput(args, receiver, label, spec, conf)
            else:
                res = steady(args, receiver, label, spec, conf)
        except Exception as exc:  # one broken scenario must not lose the others
            import traceback

            traceback.print_exc()
            res = {"scenario": label, **spec, "error": f"{type(exc).__name__}: {exc}"[:2000]}
        res["elapsed_s"] = round(time.monotonic() - started, 1)
        out["scenarios"][label] = res
        write_json(Path(args.out), out)
        w = res.get("webhookhub", {})
        brief = {
            "scenario": label,
            "s": res["elapsed_s"],
            "per_s": w.get("deliveries_per_s"),
            "publish_per_s": w.get("publish_per_s"),
            "bare_per_s": res.get("bare", {}).get("deliveries_per_s"),
            "p50_ms": (res.get("latency_ms") or {}).get("p50"),
            "keeps_up": res.get("keeps_up"),
            "error": res.get("error"),
        }
        print(
            "everyday",
            args.variant,
            json.dumps({k: v for k, v in brief.items() if v is not None}),
            flush=True,
        )
    receiver.set_delay(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
