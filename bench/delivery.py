"""Delivery throughput and end-to-end latency through a real `manage.py qcluster`.

Runs in its own process; the broker (ORM or Redis) comes from the environment
(REDIS_URL). Each scenario empties the bench tables and queues, creates the endpoints,
starts a fresh qcluster in its own process group, waits until it delivers (a readiness
event, then a warm-up batch big enough to reach every worker), measures, records the
RSS of every cluster process, and SIGKILLs the group.

throughput (`tp`): N deliveries = N/E events x E endpoints (URLs /hook/e1../hook/eE on
  the one receiver). The events are published by `--txns` threads, each inside one
  `transaction.atomic()`; all transactions are written first, then committed together
  (so the publishing itself is not timed), and their deliveries reach the workers
  through the on-commit fast path. Timed: first commit -> the receiver has all N
  (last arrival); the DB is then polled until all N are `succeeded`. Then the same N
  signed requests are sent by a bare client (a requests.Session in a ThreadPoolExecutor)
  at the cluster's delivery concurrency, and by the project's own transport.send.
latency (`lat`): one event per transaction to one endpoint at `--rate` events/s for
  `--duration` s; latency = receiver arrival - commit (an on_commit callback registered
  before publish() marks the commit).

python -m bench.delivery --receiver http://127.0.0.1:PORT --out x.json --scenarios tp0,tp50,lat
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from bench.common import (
    Cluster,
    Receiver,
    cluster_processes,
    cpu_delta,
    cpu_snapshot,
    django_setup,
    loadavg,
    percentile,
    pids_by_comm,
    reset_data,
    reset_queues,
    write_json,
)

PAD = "x" * 120


def settings_summary() -> dict:
    from django.conf import settings

    q = settings.Q_CLUSTER
    return {
        "broker": "redis" if settings.REDIS_URL else "orm",
        "workers": q["workers"],
        # Drains claim up to an endpoint's max_in_flight per wave; the warm-up sizes its
        # batch by the send concurrency, and a commit wakes its endpoints a few per task.
        "batch_size": settings.WEBHOOKHUB_SEND_CONCURRENCY,
        "endpoints_per_task": settings.WEBHOOKHUB_DRAIN_ENDPOINTS_PER_TASK,
        "send_concurrency": settings.WEBHOOKHUB_SEND_CONCURRENCY,
        "queue_limit": q.get("queue_limit"),
        "poll": q.get("poll"),
        "recycle": q.get("recycle"),
        "max_rss_kb": q.get("max_rss"),
        "lease_margin_s": settings.WEBHOOKHUB_LEASE_MARGIN_SECONDS,
        "dispatch_reservation_s": settings.WEBHOOKHUB_DISPATCH_RESERVATION_SECONDS,
    }


# --- world ---------------------------------------------------------------------------------


def make_world(receiver: Receiver, endpoints: int, prefix: str) -> list:
    from endpoints.services import endpoint_create, partner_create
    from events.models import EventType

    reset_data()
    from django.conf import settings

    reset_queues(settings.REDIS_URL or None)
    EventType.objects.create(name="bench.event", description="benchmark")
    partner = partner_create(name="bench")
    made = []
    for i in range(1, endpoints + 1):
        made.append(
            endpoint_create(
                partner,
                name=f"bench {prefix}{i}",
                url=f"{receiver.base_url}/hook/{prefix}{i}",
                event_types=["*"],
                by="bench",
            )
        )
    return made


def keys_for(event_ids, endpoints) -> list[str]:
    paths = [e.url.split("://", 1)[1].split("/", 1)[1] for e in endpoints]
    return [f"/{path} {event_id}" for event_id in event_ids for path in paths]


def publish_one(i: int, source: str):
    from events.services import publish

    return publish("bench.event", {"n": i, "pad": PAD}, source=source)


def wait_ready(receiver: Receiver, endpoints, cluster: Cluster, *, workers: int, batch: int):
    """A readiness event, then a warm-up batch that gives every worker a task."""
    from django.db import transaction

    started = time.monotonic()
    with transaction.atomic():
        event = publish_one(0, "bench-ready")
    got = receiver.wait_for(keys_for([event.public_id], endpoints), timeout=120)
    if len(got) < len(endpoints):
        raise RuntimeError(
            f"qcluster not ready after 120 s; log: {cluster.log_path}\n"
            + "\n".join(cluster.log_problems()[-20:])
        )
    ready_s = time.monotonic() - started
    warm_events = max(1, math.ceil(2 * workers * batch / len(endpoints)))
    with transaction.atomic():
        ids = [publish_one(i, "bench-warmup").public_id for i in range(warm_events)]
    receiver.wait_for(keys_for(ids, endpoints), timeout=120)
    time.sleep(0.5)
    receiver.reset()
    return ready_s


def dispatcher_pid() -> int | None:
    from deliveries.models import WorkerLease

    lease = WorkerLease.objects.filter(name="dispatcher").first()
    if lease and lease.holder:
        try:
            return int(lease.holder.split("-", 1)[0])
        except ValueError:
            return None
    return None


def cluster_stat(cluster_pid: int) -> dict | None:
    """django-q2's own record of the cluster's pids (only the Redis broker shares it)."""
    from django.conf import settings

    if not settings.REDIS_URL:
        return None
    from django_q.status import Stat

    for stat in Stat.get_all():
        if stat.pid == cluster_pid:
            return {"workers": stat.workers, "monitor": stat.monitor, "pusher": stat.pusher}
    return None


def tasks_counter() -> int | None:
    """Tasks pushed to the broker so far (ORM: the OrmQ id sequence; Redis: RPUSH calls,
    server-wide)."""
    from django.conf import settings
    from django.db import connection

    if settings.REDIS_URL:
        import redis

        client = redis.from_url(settings.REDIS_URL)
        try:
            return int(client.info("commandstats").get("cmdstat_rpush", {}).get("calls", 0))
        finally:
            client.close()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence('django_q_ormq', 'id')")
        (seq,) = cursor.fetchone()
        cursor.execute(f"SELECT last_value, is_called FROM {seq}")
        last, called = cursor.fetchone()
        return int(last) if called else 0


class RedispatchSampler(threading.Thread):
    """Samples the bench deliveries every 0.1 s: which ones the dispatcher loop reserved,
    and (every 0.5 s) a timeline of statuses and broker queue depth.

    The dispatcher reserves the rows it re-enqueues (a lease token and `claimed_until`
    = now + WEBHOOKHUB_DISPATCH_RESERVATION_SECONDS, 30 s); a worker's claim takes a
    lease of timeout + connect timeout + WEBHOOKHUB_LEASE_MARGIN_SECONDS (15+5+15 s for
    the bench endpoints). An unfinished row holding a token with at most reservation +
    0.5 s left is therefore a dispatcher reservation (a worker claim here lasts well
    under the 4.5 s it would take to drop that low). A lower bound: a reservation taken
    and claimed between two samples is missed.
    """

    def __init__(self, source: str, t0: float) -> None:
        super().__init__(daemon=True)
        self.source = source
        self.t0 = t0
        self.stop_event = threading.Event()
        self.ids: set[int] = set()
        self.samples = 0
        self.enabled = True
        self.timeline: list[dict] = []

    def queue_depth(self) -> int | None:
        from django.conf import settings

        if settings.REDIS_URL:
            if not hasattr(self, "_redis"):
                import redis

                self._redis = redis.from_url(settings.REDIS_URL)
            return self._redis.llen("django_q:webhookhub:q")
        from django_q.models import OrmQ

        return OrmQ.objects.count()

    def run(self) -> None:
        from django.conf import settings
        from django.db import connection
        from django.db.models import Count
        from django.utils import timezone

        from deliveries.models import Delivery, DeliveryStatus

        reservation = settings.WEBHOOKHUB_DISPATCH_RESERVATION_SECONDS
        lease = 15 + 5 + settings.WEBHOOKHUB_LEASE_MARGIN_SECONDS
        if lease - reservation < 2:
            self.enabled = False
        try:
            while not self.stop_event.is_set():
                rows = Delivery.objects.filter(event__source=self.source)
                if self.enabled:
                    cutoff = timezone.now() + timedelta(seconds=reservation + 0.5)
                    self.ids.update(
                        rows.filter(claimed_until__lte=cutoff, claimed_until__isnull=False)
                        .exclude(lease_token="")
                        .exclude(status__in=(DeliveryStatus.SUCCEEDED, DeliveryStatus.DEAD))
                        .values_list("pk", flat=True)
                    )
                if self.samples % 5 == 0:
                    point = {"t": round(time.time() - self.t0, 2), "queue": self.queue_depth()}
                    point.update(
                        dict(rows.values_list("status").annotate(n=Count("id")).order_by())
                    )
                    point["reserved_seen"] = len(self.ids)
                    self.timeline.append(point)
                self.samples += 1
                self.stop_event.wait(0.1)
        finally:
            connection.close()


def arrival_histogram(arrivals, t0: float, bin_s: float = 0.5) -> list[int]:
    bins: list[int] = []
    for t in arrivals:
        i = max(0, int((t - t0) / bin_s))
        while len(bins) <= i:
            bins.append(0)
        bins[i] += 1
    return bins


def start_profiler(args, cluster: Cluster, label: str):
    """py-spy (if --profile and py-spy is installed) on the whole cluster, for diagnosis."""
    import shutil
    import subprocess

    from bench.common import LOGS

    if not args.profile:
        return None
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        print("py-spy not installed; --profile ignored", file=sys.stderr)
        return None
    out = LOGS / f"pyspy-{label}-{int(time.time())}.txt"
    process = subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(cluster.pid),
            "--subprocesses",
            "--format",
            "raw",
            "--gil",  # only samples holding the GIL: where the CPU goes, not the waits
            "--rate",
            str(args.profile_rate),
            "--nonblocking",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches
    return process, out


def stop_profiler(process, out: Path) -> str:
    import signal as _signal

    process.send_signal(_signal.SIGINT)
    try:
        process.wait(30)
    except Exception:
        process.kill()
    return str(out)


def cpu_groups(cluster: Cluster | None, receiver_pid: int | None) -> dict[str, list[int]]:
    from bench.common import children_of

    groups: dict[str, list[int]] = {"bench": [os.getpid()]}
    if cluster is not None:
        pids = [cluster.pid]
        for child in children_of(cluster.pid):
            pids.append(child)
            pids.extend(children_of(child))
        groups["qcluster"] = pids
    groups["postgres"] = pids_by_comm("postgres")
    groups["redis"] = pids_by_comm("redis-server")
    if receiver_pid:
        groups["receiver"] = [receiver_pid]
    return groups


# --- throughput ------------------------------------------------------------------------------


def throughput(args, receiver: Receiver, delay_ms: float, label: str) -> dict:
    from django.db import connection, transaction
    from django.db.models import Count

    from deliveries.models import Delivery, DeliveryStatus

    conf = settings_summary()
    n_endpoints = args.endpoints
    n_events = args.n // n_endpoints
    n = n_events * n_endpoints
    receiver.set_delay(delay_ms)
    endpoints = make_world(receiver, n_endpoints, "e")
    delivering_workers = max(1, conf["workers"] - 1)  # one worker runs the dispatcher loop
    if args.hold_dispatcher:
        # Diagnosis only: the bench holds the "dispatcher" lease, so no dispatcher loop
        # runs (nothing is re-dispatched) and every worker delivers.
        from django.utils import timezone

        from deliveries.models import WorkerLease

        WorkerLease.objects.update_or_create(
            name="dispatcher",
            defaults={"holder": "bench-hold", "expires_at": timezone.now() + timedelta(hours=1)},
        )
        delivering_workers = conf["workers"]
    concurrency = delivering_workers * conf["send_concurrency"]
    cluster = Cluster(dict(os.environ), f"qcluster-{conf['broker']}-{label}.log")
    result: dict = {
        "scenario": label,
        "broker": conf["broker"],
        "delay_ms": delay_ms,
        "n": n,
        "endpoints": n_endpoints,
        "events": n_events,
        "txns": args.txns,
        "dispatcher_held": args.hold_dispatcher,
        "concurrency": {
            "qcluster": f"{conf['workers']} workers ("
            + (
                "dispatcher held off by the bench"
                if args.hold_dispatcher
                else "1 runs the dispatcher loop"
            )
            + f"), {delivering_workers} delivering x {conf['send_concurrency']} send threads = "
            f"up to {concurrency} requests in flight",
            "qcluster_max_in_flight": concurrency,
            "bare": f"session/transport: {concurrency} threads in one process; procs: "
            f"{delivering_workers} processes x {conf['send_concurrency']} threads",
        },
        "cluster_log": str(cluster.log_path),
        "loadavg_before": loadavg(),
    }
    try:
        result["ready_s"] = round(
            wait_ready(
                receiver,
                endpoints,
                cluster,
                workers=conf["workers"],
                batch=conf["batch_size"],
            ),
            2,
        )
        source = f"bench-{label}"
        per_txn = [
            n_events // args.txns + (1 if i < n_events % args.txns else 0) for i in range(args.txns)
        ]
        prepared = threading.Barrier(args.txns + 1)
        go = threading.Event()
        commit_marks: list[float] = []
        done_marks: list[float] = []
        prep_s: list[float] = []
        event_ids: list[str] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def txn(count: int, offset: int) -> None:
            ids = []
            try:
                started = time.perf_counter()
                with transaction.atomic():
                    transaction.on_commit(lambda: commit_marks.append(time.time()))
                    for i in range(count):
                        ids.append(publish_one(offset + i, source).public_id)
                    with lock:
                        prep_s.append(time.perf_counter() - started)
                    prepared.wait()
                    go.wait()
                done_marks.append(time.time())
                with lock:
                    event_ids.extend(ids)
            except BaseException as exc:
                errors.append(exc)
                prepared.abort()
            finally:
                connection.close()

        threads = []
        offset = 0
        for count in per_txn:
            threads.append(threading.Thread(target=txn, args=(count, offset)))
            offset += count
        prep_started = time.monotonic()
        for t in threads:
            t.start()
        prepared.wait()
        prep_wall = time.monotonic() - prep_started
        tasks_before = tasks_counter()
        groups = cpu_groups(cluster, args.receiver_pid)
        cpu_before = cpu_snapshot(groups)
        profiler = start_profiler(args, cluster, label)
        if profiler is not None:  # py-spy's own CPU is not "other"
            groups["py-spy"] = [profiler[0].pid]
        sampler = RedispatchSampler(source, time.time())
        sampler.start()
        go.set()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        first_commit = min(commit_marks)
        keys = keys_for(event_ids, endpoints)
        got = receiver.wait_for(keys, timeout=args.timeout)
        last_arrival = max(got.values()) if got else None
        after_groups = cpu_groups(cluster, args.receiver_pid)
        if "py-spy" in groups:
            after_groups["py-spy"] = groups["py-spy"]
        cpu_after = cpu_snapshot(after_groups)
        if profiler is not None:
            result["profile"] = stop_profiler(*profiler)
        # The database must agree: every delivery succeeded.
        db_deadline = time.monotonic() + 60
        while True:
            succeeded = Delivery.objects.filter(
                event__source=source, status=DeliveryStatus.SUCCEEDED
            ).count()
            if succeeded >= n or time.monotonic() > db_deadline:
                break
            time.sleep(0.05)
        db_done = time.time()
        sampler.stop_event.set()
        sampler.join()
        tasks_after = tasks_counter()
        stats = receiver.stats()
        processes = cluster_processes(
            cluster.pid,
            workers=conf["workers"],
            stat=cluster_stat(cluster.pid),
            dispatcher_pid=dispatcher_pid(),
            receiver_port=int(receiver.base_url.rsplit(":", 1)[1]),
        )
        statuses = dict(
            Delivery.objects.filter(event__source=source)
            .values_list("status")
            .annotate(n=Count("id"))
        )
        seconds = (last_arrival - first_commit) if last_arrival else None
        # At most: endpoints being drained are not woken again.
        fast_path_tasks = len(per_txn) * math.ceil(n_endpoints / conf["endpoints_per_task"])
        result["qcluster"] = {
            "received": len(got),
            "complete": len(got) == n and succeeded >= n,
            "seconds": seconds,
            "deliveries_per_s": (n / seconds) if seconds and len(got) == n else None,
            "db_all_succeeded_after_s": db_done - first_commit if succeeded >= n else None,
            "db_statuses": statuses,
            "commit_spread_ms": (max(commit_marks) - first_commit) * 1000,
            "publish_prep_wall_s": prep_wall,
            "publish_prep_per_txn_s": prep_s,
            "duplicates_at_receiver": stats["duplicates"],
            "tasks_pushed": (tasks_after - tasks_before)
            if tasks_after is not None and tasks_before is not None
            else None,
            "fast_path_tasks": fast_path_tasks,
            "redispatched_by_dispatcher": len(sampler.ids) if sampler.enabled else None,
            "redispatch_samples": sampler.samples,
            "cpu_s": cpu_delta(cpu_before, cpu_after),
            "arrivals_per_0.5s": arrival_histogram(got.values(), first_commit),
            "timeline": sampler.timeline,
            "processes": processes,
        }
    finally:
        cluster.kill()
        result["cluster_log_problems"] = cluster.log_problems()[-20:]
    # Bare clients, with the cluster gone.
    send_threads = conf["send_concurrency"]
    for mode in args.bare.split(","):
        result[f"bare_{mode}"] = bare(
            args,
            receiver,
            endpoints,
            mode=mode,
            processes=delivering_workers,
            threads=send_threads if mode == "procs" else concurrency,
        )
    q = result["qcluster"]["deliveries_per_s"]
    result["ratio"] = {}
    for mode in args.bare.split(","):
        b = result[f"bare_{mode}"]["deliveries_per_s"]
        result["ratio"][mode] = (q / b) if q and b else None
    result["loadavg_after"] = loadavg()
    return result


def _bare_send(job, session, local=None) -> int | None:
    from deliveries import signing, transport

    url, msg_id, body, secret_list = job
    headers = transport.compose_headers(
        signed=signing.webhook_headers(
            msg_id=msg_id, timestamp=int(time.time()), body=body, secrets=secret_list
        ),
        custom={},
        bearer_token=None,
    )
    if local is not None:  # the project's transport
        request = transport.OutboundRequest(
            url=url,
            body=body,
            headers=headers,
            timeout=15.0,
            connect_timeout=5.0,
            allow_private=True,
        )
        return transport.send(request, session=session).status_code
    return session.post(url, data=body, headers=headers, timeout=(5, 15)).status_code


def _plain_session(pool_size: int):
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=pool_size))
    return session


def _bare_process(jobs, threads: int, start, results) -> None:
    """One bare client process: its own requests.Session and thread pool."""
    session = _plain_session(threads)
    start.wait()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        codes = list(pool.map(lambda job: _bare_send(job, session), jobs))
    results.put(sum(1 for c in codes if c == 200))


BARE_MODES = {
    "session": "requests.Session in one ThreadPoolExecutor (one process)",
    "transport": "deliveries.transport.send, one project session per 32 threads (one process)",
    "procs": "one process per delivering worker, each a requests.Session + ThreadPoolExecutor",
}


def bare(args, receiver: Receiver, endpoints, *, mode: str, processes: int, threads: int) -> dict:
    """The same signed requests as the cluster sends, from a plain client, at the same
    total concurrency (`processes` x `threads` for mode "procs", else `threads`)."""
    import multiprocessing

    from django.utils import timezone

    from deliveries import signing, transport
    from webhookhub.ids import event_id

    receiver.reset()
    n_events = args.n // len(endpoints)
    secrets = [e.active_secrets() for e in endpoints]
    jobs = []
    for _ in range(n_events):
        msg_id = event_id()
        body = signing.encode_envelope(
            event_id=msg_id,
            event_type="bench.event",
            timestamp=timezone.now(),
            data={"n": 1, "pad": PAD},
        )
        for i, endpoint in enumerate(endpoints):
            jobs.append((endpoint.url, msg_id, body, secrets[i]))
    keys = [f"/{url.split('://', 1)[1].split('/', 1)[1]} {msg_id}" for url, msg_id, _, _ in jobs]
    total_threads = threads * (processes if mode == "procs" else 1)

    groups = cpu_groups(None, args.receiver_pid)
    if mode == "procs":
        ctx = multiprocessing.get_context("fork")
        start = ctx.Event()
        results = ctx.Queue()
        procs = [
            ctx.Process(target=_bare_process, args=(jobs[i::processes], threads, start, results))
            for i in range(processes)
        ]
        for p in procs:
            p.start()
        time.sleep(0.3)  # let them import and block on the start event
        groups["bench"] += [p.pid for p in procs]
        cpu_before = cpu_snapshot(groups)
        started = time.time()
        start.set()
        ok = sum(results.get(timeout=args.timeout) for _ in procs)
        finished = time.time()
        cpu_after = cpu_snapshot(groups)
        for p in procs:
            p.join(10)
    else:
        if mode == "transport":
            sessions = [
                transport.build_session(allow_private=True)
                for _ in range(math.ceil(threads / transport.POOL_MAXSIZE))
            ]
            local = threading.local()
            counter = iter(range(10**9))
            counter_lock = threading.Lock()

            def send(job):
                if not hasattr(local, "session"):
                    with counter_lock:
                        local.session = sessions[next(counter) % len(sessions)]
                return _bare_send(job, local.session, local)
        else:
            session = _plain_session(threads)

            def send(job):
                return _bare_send(job, session)

        cpu_before = cpu_snapshot(groups)
        started = time.time()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            codes = list(pool.map(send, jobs))
        finished = time.time()
        cpu_after = cpu_snapshot(groups)
        ok = sum(1 for c in codes if c == 200)
    got = receiver.wait_for(keys, timeout=30)
    last_arrival = max(got.values()) if got else finished
    seconds = last_arrival - started
    return {
        "client": BARE_MODES[mode],
        "processes": processes if mode == "procs" else 1,
        "threads": total_threads,
        "sent": len(jobs),
        "ok": ok,
        "received": len(got),
        "seconds": seconds,
        "deliveries_per_s": len(jobs) / seconds if ok == len(jobs) == len(got) else None,
        "cpu_s": cpu_delta(cpu_before, cpu_after),
    }


# --- latency -----------------------------------------------------------------------------------


def latency(args, receiver: Receiver, label: str) -> dict:
    from django.db import transaction

    conf = settings_summary()
    receiver.set_delay(0)
    endpoints = make_world(receiver, 1, "lat")
    cluster = Cluster(dict(os.environ), f"qcluster-{conf['broker']}-{label}.log")
    result = {
        "scenario": label,
        "broker": conf["broker"],
        "rate_per_s": args.rate,
        "duration_s": args.duration,
        "cluster_log": str(cluster.log_path),
        "loadavg_before": loadavg(),
    }
    try:
        result["ready_s"] = round(
            wait_ready(
                receiver, endpoints, cluster, workers=conf["workers"], batch=conf["batch_size"]
            ),
            2,
        )
        commits: dict[str, float] = {}
        publish_ms = []
        total = int(args.rate * args.duration)
        interval = 1.0 / args.rate
        cpu_before = cpu_snapshot(cpu_groups(cluster, args.receiver_pid))
        started = time.monotonic()
        behind = 0
        for i in range(total):
            target = started + i * interval
            pause = target - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                behind += 1
            mark = {}
            t0 = time.perf_counter()
            with transaction.atomic():
                transaction.on_commit(lambda m=mark: m.setdefault("t", time.time()))
                event = publish_one(i, f"bench-{label}")
            publish_ms.append((time.perf_counter() - t0) * 1000)
            commits[event.public_id] = mark["t"]
        elapsed = time.monotonic() - started
        keys = {f"/hook/lat1 {eid}": eid for eid in commits}
        got = receiver.wait_for(list(keys), timeout=60)
        result["cpu_s"] = cpu_delta(
            cpu_before, cpu_snapshot(cpu_groups(cluster, args.receiver_pid))
        )
        result["wall_s"] = time.monotonic() - started
        lat = [(got[k] - commits[keys[k]]) * 1000 for k in got]
        result.update(
            {
                "events": total,
                "achieved_rate_per_s": total / elapsed,
                "publishes_behind_schedule": behind,
                "received": len(got),
                "lost": total - len(got),
                "latency_ms": {
                    "p50": percentile(lat, 50),
                    "p95": percentile(lat, 95),
                    "p99": percentile(lat, 99),
                    "max": max(lat) if lat else None,
                    "min": min(lat) if lat else None,
                    "mean": sum(lat) / len(lat) if lat else None,
                },
                "publish_commit_ms": {
                    "p50": percentile(publish_ms, 50),
                    "p95": percentile(publish_ms, 95),
                },
            }
        )
    finally:
        cluster.kill()
        result["cluster_log_problems"] = cluster.log_problems()[-20:]
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receiver", required=True, help="receiver base URL")
    parser.add_argument("--receiver-pid", type=int, default=None)
    parser.add_argument("--out", required=True)
    parser.add_argument("--scenarios", default="tp0,tp50,lat")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--txns", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--delay-ms", type=float, default=50.0, help="the slow receiver's delay")
    parser.add_argument("--profile", action="store_true", help="py-spy the cluster (diagnosis)")
    parser.add_argument(
        "--hold-dispatcher", action="store_true", help="diagnosis: keep the dispatcher loop off"
    )
    parser.add_argument("--profile-rate", type=int, default=50)
    parser.add_argument("--bare", default="session,transport,procs", help="bare client modes")
    args = parser.parse_args(argv)
    django_setup()
    receiver = Receiver(args.receiver)
    out = {"settings": settings_summary(), "scenarios": {}}
    for scenario in args.scenarios.split(","):
        if scenario == "tp0":
            out["scenarios"][scenario] = throughput(args, receiver, 0.0, scenario)
        elif scenario == "tp50":
            out["scenarios"][scenario] = throughput(args, receiver, args.delay_ms, scenario)
        elif scenario == "lat":
            out["scenarios"][scenario] = latency(args, receiver, scenario)
        else:
            raise SystemExit(f"unknown scenario {scenario!r}")
        write_json(Path(args.out), out)
        print(json.dumps({scenario: "done"}), flush=True)
    receiver.set_delay(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
