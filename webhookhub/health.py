"""Liveness and readiness probes for load balancers, orchestrators and monitoring.

`/healthz` — the process is up and serving; touches nothing (a database outage must not
get healthy web processes restarted).

`/readyz` — this deployment can take and deliver events: the database answers, every
migration is applied, the django-q2 broker answers, a dispatcher loop (it runs inside a
`qcluster`) has renewed its lease recently, and the configured cluster has a worker to
deliver besides the dispatcher's. 200 or 503, with a JSON detail
per check. Point alerting at it; a load balancer that should keep serving the API
while the workers are down should use /healthz instead (docs/operations.md#health).
"""

import threading
import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone

from deliveries.selectors import dispatcher_heartbeat
from webhookhub.checks import q_workers_problem

MIGRATIONS_RECHECK = 60.0  # seconds: an all-applied result is trusted this long
_migrations_ok_at = 0.0
_migrations_lock = threading.Lock()


def healthz(request):
    """The process is up and serving requests. Touches nothing else."""
    return JsonResponse({"status": "ok"})


def _error(exc: Exception) -> dict:
    text = str(exc).strip().splitlines()
    detail = f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__
    return {"status": "error", "detail": detail[:300]}


def check_database() -> dict:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"status": "ok", "ms": round(1000 * (time.perf_counter() - started), 1)}


def check_migrations() -> dict:
    """Every migration on disk is applied (the graph is loaded at most once a minute)."""
    global _migrations_ok_at
    if time.monotonic() - _migrations_ok_at < MIGRATIONS_RECHECK:
        return {"status": "ok"}
    from django.db.migrations.executor import MigrationExecutor

    with _migrations_lock:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = [f"{m.app_label}.{m.name}" for m, _backwards in plan]
        shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
        return {"status": "error", "detail": f"{len(names)} unapplied: {shown}"}
    _migrations_ok_at = time.monotonic()
    return {"status": "ok"}


def check_broker() -> dict:
    from django_q.brokers import get_broker

    broker = get_broker()
    broker.ping()
    # The ORM broker's ping() does not touch anything; counting its queue does.
    return {"status": "ok", "broker": broker.info(), "queued": broker.queue_size() or 0}


def check_cluster() -> dict:
    """A dispatcher loop renewed its lease within WEBHOOKHUB_READY_HEARTBEAT_SECONDS."""
    limit = settings.WEBHOOKHUB_READY_HEARTBEAT_SECONDS
    beat = dispatcher_heartbeat()
    if beat is None:
        return {"status": "error", "detail": "no qcluster has ever run against this database"}
    age = (timezone.now() - beat).total_seconds()
    result = {"heartbeat_at": beat.isoformat(), "age_seconds": round(age, 1)}
    if age > limit:
        detail = f"no dispatcher heartbeat for {age:.0f} s (limit {limit} s)"
        return {"status": "error", "detail": detail + ": is a qcluster running?", **result}
    return {"status": "ok", **result}


def check_workers() -> dict:
    """The configured qcluster has a worker to deliver besides the dispatcher loop's."""
    workers = settings.Q_CLUSTER.get("workers")
    problem = q_workers_problem()
    if problem:
        return {"status": "error", "detail": problem + " (raise it to 2 or more)"}
    return {"status": "ok", "workers": workers}


CHECKS = {
    "database": check_database,
    "migrations": check_migrations,
    "broker": check_broker,
    "cluster": check_cluster,
    "workers": check_workers,
}
# Without the database only these can still be checked (the broker only if it is Redis).
OFFLINE = {"database", "workers"}


def readyz(request):
    """200 when every check passes, 503 otherwise; JSON detail per check."""
    checks = {}
    for name, check in CHECKS.items():
        offline = name in OFFLINE or (name == "broker" and bool(settings.REDIS_URL))
        if not offline and checks["database"]["status"] != "ok":
            checks[name] = {"status": "skipped", "detail": "needs the database"}
            continue
        try:
            checks[name] = check()
        except Exception as exc:  # any error means "not ready", with its reason
            checks[name] = _error(exc)
    ready = all(c["status"] == "ok" for c in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )
