"""webhookhub's Prometheus metrics (all named `webhookhub_*`).

Two kinds, chosen for where the truth lives (docs/operations.md#metrics):

- **What happened** — counters and a histogram, incremented by the process where it
  happened (a qcluster worker records an attempt, a web worker or your code publishes).
  With PROMETHEUS_MULTIPROC_DIR set they go to prometheus_client's per-process files
  and /metrics adds up every process of the machine.
- **What is** — gauges read from the database when /metrics is scraped (the database
  is the truth for backlog, dead letters, circuits), each query bounded by an index
  (`deliveries.selectors`), the result reused for WEBHOOKHUB_METRICS_CACHE_SECONDS.

Recording a metric never raises: a metrics problem must not break a delivery.
"""

import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.utils import timezone
from prometheus_client import Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily

from deliveries import selectors

logger = logging.getLogger(__name__)


def check_multiprocess_setup() -> str | None:
    """A problem with the multiprocess setup (counters that would not reach /metrics),
    or None."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path and not getattr(values.ValueClass, "_multiprocess", False):
        return (
            "PROMETHEUS_MULTIPROC_DIR is set but prometheus_client was imported before it: "
            "this process's counters will not reach /metrics"
        )
    if path and not os.path.isdir(path):
        return f"PROMETHEUS_MULTIPROC_DIR={path} is not a directory"
    return None


def _warn_if_misconfigured() -> None:
    problem = check_multiprocess_setup()
    if problem:
        logger.warning(problem)


_warn_if_misconfigured()

EVENTS_PUBLISHED = Counter(
    "webhookhub_events_published",
    "Events published (committed), by event type.",
    ["event_type"],
)
DELIVERIES_CREATED = Counter(
    "webhookhub_deliveries_created",
    "Deliveries created by published events (one per event and subscribed endpoint).",
    ["event_type"],
)
ATTEMPTS = Counter(
    "webhookhub_delivery_attempts",
    "HTTP delivery attempts by outcome (succeeded, http_error, timeout, connection, dns, "
    "tls, refused_unsafe_address), response status class (2xx…5xx, none) and trigger.",
    ["outcome", "status_class", "trigger"],
)
ATTEMPT_SECONDS = Histogram(
    "webhookhub_delivery_attempt_duration_seconds",
    "Duration of HTTP delivery attempts, by outcome.",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60),
)
DELIVERIES_COMPLETED = Counter(
    "webhookhub_deliveries_completed",
    "Deliveries that reached a final state after an attempt: succeeded or dead.",
    ["status"],
)


def outcome_of(result) -> str:
    if result.succeeded:
        return "succeeded"
    if result.error_kind and result.error_kind != "http_status":
        return str(result.error_kind)
    return "http_error"


def status_class(code: int | None) -> str:
    return "none" if code is None else f"{code // 100}xx"


def event_published(event_type: str, deliveries: int) -> None:
    """Count one committed event and its deliveries."""
    try:
        EVENTS_PUBLISHED.labels(event_type).inc()
        if deliveries:
            DELIVERIES_CREATED.labels(event_type).inc(deliveries)
    except Exception:
        logger.warning("could not count a published event", exc_info=True)


def attempts_recorded(outcomes: Sequence, *, dead: int = 0) -> None:
    """Count recorded attempts (engine `Outcome`s) and the deliveries they finished."""
    try:
        succeeded = 0
        for outcome in outcomes:
            result = outcome.result
            kind = outcome_of(result)
            succeeded += result.succeeded
            ATTEMPTS.labels(
                kind, status_class(result.status_code), outcome.delivery.next_trigger
            ).inc()
            ATTEMPT_SECONDS.labels("succeeded" if result.succeeded else "failed").observe(
                result.duration_ms / 1000
            )
        if succeeded:
            DELIVERIES_COMPLETED.labels("succeeded").inc(succeeded)
        if dead:
            DELIVERIES_COMPLETED.labels("dead").inc(dead)
    except Exception:
        logger.warning("could not count delivery attempts", exc_info=True)


class StateCollector:
    """Gauges computed from the database at scrape time (cached a few seconds).

    Never raises: if the database is unreachable, `webhookhub_metrics_database_up` is 0
    and the counters are still exported.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: list | None = None
        self._cached_at = 0.0

    def collect(self) -> Iterable:
        with self._lock:
            ttl = settings.WEBHOOKHUB_METRICS_CACHE_SECONDS
            if self._cached is None or time.monotonic() - self._cached_at >= ttl:
                self._cached = self._compute()
                self._cached_at = time.monotonic()
            return list(self._cached)

    def _compute(self) -> list:
        started = time.perf_counter()
        try:
            families = list(_state_families())
            up = 1
        except Exception:
            logger.warning("could not read delivery state for /metrics", exc_info=True)
            families, up = [], 0
        families.append(
            _gauge("webhookhub_metrics_database_up", "1 if /metrics could read the database.", up)
        )
        families.append(
            _gauge(
                "webhookhub_metrics_collect_seconds",
                "Time spent reading the state gauges from the database.",
                time.perf_counter() - started,
            )
        )
        return families


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _labelled(name: str, documentation: str, label: str, values: dict) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in values.items():
        family.add_metric([str(key)], value)
    return family


_broker = None


def _queue_depth() -> int:
    global _broker
    from django_q.brokers import get_broker

    if _broker is None:
        _broker = get_broker()
    return _broker.queue_size() or 0


def _state_families() -> Iterable[GaugeMetricFamily]:
    now = timezone.now()
    statuses = selectors.delivery_status_counts()
    yield _labelled(
        "webhookhub_deliveries",
        "Deliveries by status (exact up to 10,000 per status, PostgreSQL's estimate above).",
        "status",
        {status: count.value for status, count in statuses.items()},
    )
    yield _gauge(
        "webhookhub_dead_letters",
        "Dead deliveries: all attempts used (the dead-letter list, replayable).",
        statuses["dead"].value,
    )
    backlog = selectors.due_backlog(now)
    yield _gauge(
        "webhookhub_deliveries_due",
        "Waiting deliveries whose time has come but that have not been sent yet.",
        backlog.due.value,
    )
    age = 0.0 if backlog.oldest_due_at is None else (now - backlog.oldest_due_at).total_seconds()
    yield _gauge(
        "webhookhub_deliveries_due_oldest_age_seconds",
        "How long the oldest due, unsent delivery has been due (0 when none is due).",
        max(0.0, age),
    )
    yield _gauge(
        "webhookhub_deliveries_lease_expired",
        "In-flight deliveries whose worker's lease expired (the dispatcher re-sends them).",
        selectors.count_bounded(selectors.expired_leases(now)).value,
    )
    endpoints = selectors.endpoint_counts()
    yield _gauge("webhookhub_endpoints", "Endpoints, enabled or not.", endpoints.total)
    yield _labelled(
        "webhookhub_endpoints_disabled",
        "Disabled endpoints by who switched them off: manual, auto (sustained failure), "
        "gone (410).",
        "kind",
        endpoints.disabled,
    )
    yield _gauge(
        "webhookhub_endpoints_circuit_open",
        "Enabled endpoints whose circuit breaker is open or half-open.",
        sum(n for state, n in endpoints.circuits.items() if state != "closed"),
    )
    beat = selectors.dispatcher_heartbeat()
    yield _gauge(
        "webhookhub_dispatcher_heartbeat_age_seconds",
        "Seconds since a dispatcher loop (inside a qcluster) last renewed its lease; "
        "-1 if none ever ran.",
        -1 if beat is None else max(0.0, (now - beat).total_seconds()),
    )
    yield _gauge(
        "webhookhub_queue_depth",
        "Tasks waiting in the django-q2 broker (each carries up to a batch of deliveries).",
        _queue_depth(),
    )


STATE = StateCollector()
