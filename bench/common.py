"""Shared helpers: environment, database, receiver control, qcluster processes, /proc."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LOGS = BENCH / "logs"
RESULTS = BENCH / "results"
PYTHON = sys.executable

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432"
DEFAULT_DB = "webhookhub_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"


# --- environment -------------------------------------------------------------------------


def base_env(*, pg: str, db_name: str, fernet_key: str, extra: dict | None = None) -> dict:
    """The environment every bench child and qcluster gets (broker chosen later)."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "webhookhub.settings",
            "SECRET_KEY": "bench-only-not-secret-" + "x" * 40,
            "WEBHOOKHUB_ENCRYPTION_KEY": fernet_key,
            "WEBHOOKHUB_ALLOW_PRIVATE_URLS": "true",
            "DATABASE_URL": f"{pg.rstrip('/')}/{db_name}",
            "LOG_LEVEL": "WARNING",
            "Q_LOG_LEVEL": "WARNING",
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra or {})
    return env


def broker_env(env: dict, broker: str, redis_url: str) -> dict:
    env = dict(env)
    # An empty REDIS_URL (not an unset one) also beats a REDIS_URL in a local .env.
    env["REDIS_URL"] = redis_url if broker == "redis" else ""
    return env


def django_setup() -> None:
    """Configure Django in a bench child (settings come from the environment)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webhookhub.settings")
    import django

    django.setup()


# --- database ------------------------------------------------------------------------------


def recreate_database(pg: str, db_name: str, env: dict) -> float:
    """DROP + CREATE the bench database, then `manage.py migrate`. Returns seconds."""
    if not db_name.startswith("webhookhub_bench"):
        raise SystemExit(
            f"refusing to touch database {db_name!r}: name must start with webhookhub_bench"
        )
    import psycopg

    started = time.monotonic()
    with psycopg.connect(f"{pg.rstrip('/')}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db_name}"')
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    return time.monotonic() - started


def reset_data() -> None:
    """Empty every table the benchmarks write (inside a configured Django child)."""
    from django.db import connection

    tables = [
        "deliveries_deliveryattempt",
        "deliveries_delivery",
        "deliveries_workerlease",
        "events_event",
        "events_eventtype",
        "endpoints_subscription",
        "endpoints_apitoken",
        "endpoints_endpoint",
        "endpoints_partner",
        "django_q_ormq",
        "django_q_task",
    ]
    existing = set(connection.introspection.table_names())
    tables = [t for t in tables if t in existing]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


def reset_queues(redis_url: str | None) -> None:
    """Drop queued tasks, cluster stats and the dispatcher lease left by an earlier run."""
    from django_q.models import OrmQ

    from deliveries.models import WorkerLease

    OrmQ.objects.all().delete()
    WorkerLease.objects.all().delete()
    if redis_url:
        import redis

        client = redis.from_url(redis_url)
        keys = list(client.scan_iter("django_q:*"))
        if keys:
            client.delete(*keys)
        client.close()


# --- receiver control ----------------------------------------------------------------------


class Receiver:
    """Client for bench/receiver.py's control endpoints."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    @property
    def hook_url(self) -> str:
        return f"{self.base_url}/hook"

    def _call(self, path: str, data: dict | None = None):
        body = None if data is None else json.dumps(data).encode()
        request = urllib.request.Request(
            self.base_url + path, data=body, method="GET" if data is None else "POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def stats(self) -> dict:
        return self._call("/_bench/stats")

    def arrivals(self) -> dict[str, float]:
        return self._call("/_bench/arrivals")

    def reset(self) -> dict:
        return self._call("/_bench/reset", {})

    def set_delay(self, delay_ms: float) -> dict:
        return self._call("/_bench/config", {"delay_ms": delay_ms})

    def wait_for(self, ids, *, timeout: float, interval: float = 0.05) -> dict[str, float]:
        """Wait until every id in `ids` has arrived (or timeout); return their arrivals."""
        wanted = set(ids)
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["unique"] >= len(wanted) or time.monotonic() > deadline:
                arrivals = self.arrivals()
                got = {i: arrivals[i] for i in wanted if i in arrivals}
                if len(got) == len(wanted) or time.monotonic() > deadline:
                    return got
            time.sleep(interval)


def start_receiver(delay_ms: float = 0.0) -> tuple[subprocess.Popen, Receiver]:
    LOGS.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [PYTHON, "-m", "bench.receiver", "--port", "0", "--delay-ms", str(delay_ms)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=open(LOGS / "receiver.log", "w"),  # noqa: SIM115
        text=True,
        start_new_session=True,
    )
    line = process.stdout.readline().strip()
    if not line.startswith("READY "):
        process.kill()
        raise RuntimeError(f"receiver did not start: {line!r}")
    port = int(line.split()[1])
    return process, Receiver(f"http://127.0.0.1:{port}")


def stop_process_group(process: subprocess.Popen, *, term_first: bool = False) -> None:
    """Kill a child started with start_new_session=True together with its group."""
    if process.poll() is None and term_first:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)


# --- qcluster ------------------------------------------------------------------------------


class Cluster:
    """One `manage.py qcluster` in its own process group (SIGKILLed as a group)."""

    def __init__(self, env: dict, log_name: str) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / log_name
        self.log = open(self.log_path, "w+")  # noqa: SIM115
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [PYTHON, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        stop_process_group(self.process)
        self.log.close()

    def log_problems(self) -> list[str]:
        """Log lines at WARNING or above (the cluster logs at WARNING)."""
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace")
            return [
                line[:300]
                for line in text.splitlines()
                if re.search(r"WARNING|ERROR|CRITICAL|Traceback|reincarnated", line)
            ]
        return []


# --- /proc ----------------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[int, str] | None:
    """(ppid, comm) from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), comm


def children_of(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _proc_stat(int(entry))
            if info and info[0] == pid:
                kids.append(int(entry))
    return sorted(kids)


def proc_status(pid: int) -> dict:
    """VmRSS / VmHWM (kB) and thread count from /proc/<pid>/status."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, in seconds."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def socket_inodes_to_port(port: int) -> set[str]:
    """Inodes of established TCP sockets whose remote port is `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                remote, state, inode = parts[2], parts[3], parts[9]
                if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes


def open_socket_inodes(pid: int) -> set[str]:
    found = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    found.add(target[8:-1])
    return found


def cluster_processes(
    cluster_pid: int,
    *,
    workers: int,
    stat: dict | None = None,
    dispatcher_pid: int | None = None,
    receiver_port: int | None = None,
) -> list[dict]:
    """Every process of a qcluster with its role, VmRSS and VmHWM.

    Roles: the `manage.py qcluster` process; its child, the sentinel (guard loop); the
    sentinel's children: workers, monitor and pusher. With the Redis broker `stat`
    (django-q2's cluster Stat, which has the pids) names them; otherwise the spawn
    order is used (workers first, then monitor, then pusher).
    """
    rows = []
    receiver_inodes = socket_inodes_to_port(receiver_port) if receiver_port else set()

    def row(pid: int, role: str, how: str) -> dict:
        status = proc_status(pid)
        conns = len(open_socket_inodes(pid) & receiver_inodes) if receiver_inodes else None
        return {
            "pid": pid,
            "role": role,
            "identified_by": how,
            "rss_mb": round(status.get("VmRSS", 0) / 1024, 1),
            "hwm_mb": round(status.get("VmHWM", 0) / 1024, 1),
            "threads": status.get("Threads"),
            "receiver_connections": conns,
            "cpu_s": proc_cpu_seconds(pid),
        }

    rows.append(row(cluster_pid, "qcluster (main)", "process"))
    sentinels = children_of(cluster_pid)
    for sentinel in sentinels:
        rows.append(row(sentinel, "guard (sentinel)", "process tree"))
        kids = children_of(sentinel)
        roles: dict[int, tuple[str, str]] = {}
        if stat:
            for pid in stat.get("workers", []):
                roles[pid] = ("worker", "cluster Stat")
            if stat.get("monitor"):
                roles[stat["monitor"]] = ("monitor", "cluster Stat")
            if stat.get("pusher"):
                roles[stat["pusher"]] = ("pusher", "cluster Stat")
        else:
            ordered = sorted(kids)
            for pid in ordered[:workers]:
                roles[pid] = ("worker", "spawn order")
            rest = ordered[workers:]
            if len(rest) >= 1:
                roles[rest[0]] = ("monitor", "spawn order")
            if len(rest) >= 2:
                roles[rest[1]] = ("pusher", "spawn order")
            for pid in rest[2:]:
                roles[pid] = ("worker?", "spawn order (respawned?)")
        for pid in kids:
            role, how = roles.get(pid, ("unknown", "-"))
            if role.startswith("worker") and pid == dispatcher_pid:
                role = "worker (dispatcher loop)"
            rows.append(row(pid, role, how))
    return rows


# --- numbers --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100), like numpy's default."""
    if not values:
        return None
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def median(values: list[float]) -> float | None:
    return percentile(values, 50)


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


# --- CPU accounting ---------------------------------------------------------------------------


def pids_by_comm(prefix: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _proc_stat(int(entry))
            if info and info[1].startswith(prefix):
                found.append(int(entry))
    return found


def system_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(groups: dict[str, list[int]]) -> dict[str, dict[int, float]]:
    snap = {
        name: {pid: cpu for pid in pids if (cpu := proc_cpu_seconds(pid)) is not None}
        for name, pids in groups.items()
    }
    snap["_system"] = {0: system_busy_seconds()}
    return snap


def cpu_delta(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds each group used between two snapshots (new pids count from 0), and
    `other`: the machine's busy CPU seconds that none of the groups account for
    (other people's processes, the kernel) — a run with a large `other` was disturbed."""
    out = {}
    for name, now in after.items():
        if name == "_system":
            continue
        then = before.get(name, {})
        out[name] = round(sum(cpu - then.get(pid, 0.0) for pid, cpu in now.items()), 2)
    if "_system" in before and "_system" in after:
        system = after["_system"][0] - before["_system"][0]
        out["other"] = round(system - sum(out.values()), 2)
    return out


# --- additions for the `everyday` part (bench/everyday.py) ---------------------------------


def proc_reaped_cpu_seconds(pid: int) -> float | None:
    """cutime + cstime of a process: CPU of the children it has waited for, in seconds.

    A recycled qcluster worker or a PostgreSQL backend that exits during a run takes its
    utime/stime out of /proc; its parent's cutime/cstime gets it when it is reaped.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[13]) + int(fields[14])) / ticks


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (a qcluster: main, sentinel, workers, ...)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        if proc_cpu_seconds(current) is None:
            continue
        out.append(current)
        todo.extend(children_of(current))
    return sorted(out)


def tree_cpu_snapshot(groups: dict[str, list[int]]) -> dict:
    """cpu_snapshot(groups) plus every pid's reaped-children CPU (see tree_cpu_delta)."""
    snap = cpu_snapshot(groups)
    snap["_reaped"] = {
        name: {pid: c for pid in pids if (c := proc_reaped_cpu_seconds(pid)) is not None}
        for name, pids in groups.items()
    }
    return snap


def tree_cpu_delta(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds per group between two tree_cpu_snapshot()s, counting processes that
    exited in between: a pid gone by `after` is counted through its parent's reaped-
    children CPU (the parent is in the group), minus what it had used before `before`.
    Like cpu_delta, `other` is the machine's busy CPU that no group accounts for."""
    out = {}
    reaped_before, reaped_after = before.get("_reaped", {}), after.get("_reaped", {})
    for name, now in after.items():
        if name.startswith("_"):
            continue
        then = before.get(name, {})
        then_reaped = reaped_before.get(name, {})
        live = sum(cpu - then.get(pid, 0.0) for pid, cpu in now.items())
        reaped = sum(c - then_reaped.get(pid, 0.0) for pid, c in reaped_after.get(name, {}).items())
        gone = sum(cpu + then_reaped.get(pid, 0.0) for pid, cpu in then.items() if pid not in now)
        out[name] = round(live + reaped - gone, 3)
    if "_system" in before and "_system" in after:
        system = after["_system"][0] - before["_system"][0]
        out["other"] = round(system - sum(out.values()), 3)
    return out


BENCH_TABLES_EXTRA_PREFIXES = ("deliveries_", "events_", "endpoints_")


def reset_data_any_db() -> None:
    """reset_data() for PostgreSQL or SQLite (no TRUNCATE there), then reset_queues().

    Also empties any other table of the deliveries, events and endpoints apps (the
    engine may gain tables), with Django's flush SQL (TRUNCATE ... CASCADE on
    PostgreSQL, DELETE on SQLite). django_q_schedule is kept (the app's schedules).
    """
    from django.conf import settings
    from django.core.management.color import no_style
    from django.db import connection

    known = {
        "deliveries_deliveryattempt",
        "deliveries_delivery",
        "deliveries_workerlease",
        "events_event",
        "events_eventtype",
        "endpoints_subscription",
        "endpoints_apitoken",
        "endpoints_endpoint",
        "endpoints_partner",
        "django_q_ormq",
        "django_q_task",
    }
    existing = set(connection.introspection.table_names())
    tables = sorted(
        t
        for t in existing
        if t in known or (t.startswith(BENCH_TABLES_EXTRA_PREFIXES) and "migrations" not in t)
    )
    if connection.vendor == "postgresql":
        reset_data()
        tables = [t for t in tables if t not in known]
    if tables:
        sql = connection.ops.sql_flush(no_style(), tables, reset_sequences=True, allow_cascade=True)
        connection.ops.execute_sql_flush(sql)
    reset_queues(getattr(settings, "REDIS_URL", "") or None)


def postgres_backend_database(pid: int) -> str | None:
    """The database of a PostgreSQL client backend, from its process title
    (`postgres: 15/main: <user> <database> <host>(<port>) <state>`); None for the
    server's own processes (postmaster, checkpointer, walwriter, ...)."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, UnicodeDecodeError):
        return None
    parts = title.split()
    for i, token in enumerate(parts):
        # the client address: "127.0.0.1(50114)", "[local]", "::1(1234)"
        if i >= 2 and (token == "[local]" or re.fullmatch(r"[0-9a-fA-F.:]+\(\d+\)", token)):
            return parts[i - 1]
    return None


def postgres_pids(db_name: str | None = None) -> list[int]:
    """All `postgres` processes, or (db_name given) the server's own processes and the
    client backends of that database only — not those of a test suite sharing the
    server. db_name="" keeps the server's own processes only."""
    pids = pids_by_comm("postgres")
    if db_name is None:
        return pids
    return [p for p in pids if postgres_backend_database(p) in (None, db_name)]
