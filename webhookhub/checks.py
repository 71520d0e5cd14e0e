"""System checks for settings that break only at run time (`manage.py check`).

Each catches a configuration that imports fine and then fails while serving: secrets
that cannot be stored, worker counters that never reach /metrics, a cluster that
delivers nothing, a web request that outlives its worker. The offline ones run with
every `check` (so also before `migrate`, `qcluster` and the other commands); the one
that talks to the network (Redis) only with `check --deploy`. docs/operations.md#checks
lists them.
"""

import os
import tempfile
from urllib.parse import urlsplit, urlunsplit

import redis
from django.conf import settings
from django.core.checks import Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from endpoints.crypto import _fernet
from webhookhub.metrics import allowed_networks

TAG = "webhookhub"
MIN_Q_WORKERS = 2  # one is held by the dispatcher loop while it runs (deliveries.dispatch)
REDIS_TIMEOUT = 2.0  # seconds, connect and reply
DEFAULT_TEST_WAIT_SECONDS = 1.5


@register(TAG)
def check_encryption_key(app_configs=None, **kwargs) -> list:
    """E001: secrets at rest need a usable Fernet key list (missing or not a key)."""
    try:
        _fernet()
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint="Set WEBHOOKHUB_ENCRYPTION_KEY (environment or .env) to one or more "
                "Fernet keys, comma-separated, newest first; keep the old keys after a new "
                "one when rotating (docs/operations.md#rotating-the-encryption-key).",
                id="webhookhub.E001",
            )
        ]
    return []


def multiprocess_dir_problem(path: str) -> str | None:
    """Why prometheus_client cannot keep its per-process files in `path`, or None."""
    if not os.path.exists(path):
        return "does not exist"
    if not os.path.isdir(path):
        return "is not a directory"
    try:  # a real write: permissions, read-only mounts and quotas all show here
        with tempfile.NamedTemporaryFile(dir=path, prefix=".webhookhub-check-"):
            pass
    except OSError as exc:
        return f"is not writable ({exc.__class__.__name__}: {exc.strerror or exc})"
    return None


@register(TAG)
def check_multiprocess_dir(app_configs=None, **kwargs) -> list:
    """E002: counters of every process go to PROMETHEUS_MULTIPROC_DIR when it is set."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")  # prometheus_client reads it here
    problem = path and multiprocess_dir_problem(path)
    if not problem:
        return []
    return [
        Error(
            f"PROMETHEUS_MULTIPROC_DIR={path} {problem}: the web, worker and command "
            "processes cannot write their counters there, so /metrics never sees them.",
            hint="Point it at a directory on local disk (a tmpfs such as "
            "/run/webhookhub/metrics is best) that every web and worker process of the "
            "machine can write, or leave it empty to count per process only "
            "(docs/operations.md#metrics).",
            id="webhookhub.E002",
        )
    ]


def q_workers_problem() -> str | None:
    """Why the configured cluster cannot deliver, or None (shared with /readyz)."""
    workers = settings.Q_CLUSTER.get("workers")
    if workers is None or workers >= MIN_Q_WORKERS:
        return None  # None: django-q2 starts one per CPU
    return (
        f"WEBHOOKHUB_Q_WORKERS is {workers}: the dispatcher loop keeps one worker of the "
        "qcluster that runs it busy, so with fewer than 2 workers no delivery is sent"
    )


@register(TAG)
def check_q_workers(app_configs=None, **kwargs) -> list:
    """E003: a qcluster needs a worker for the dispatcher loop and one to deliver."""
    problem = q_workers_problem()
    if not problem:
        return []
    return [
        Error(
            problem + ".",
            hint="Set WEBHOOKHUB_Q_WORKERS to 2 or more (default 4); each worker but the "
            "dispatcher's sends up to WEBHOOKHUB_SEND_CONCURRENCY requests at once.",
            id="webhookhub.E003",
        )
    ]


@register(TAG)
def check_test_wait(app_configs=None, **kwargs) -> list:
    """E004 / W001: waiting for a test's result must leave the web request time to spare.

    The only wait in a web request: POST /endpoints/{id}/test/ (and the admin's "Send
    test event") wait this long for the worker's result before answering 202. gunicorn
    kills a worker whose request outlives WEB_TIMEOUT.
    """
    web_timeout = settings.WEB_TIMEOUT
    wait = getattr(settings, "WEBHOOKHUB_TEST_WAIT_SECONDS", DEFAULT_TEST_WAIT_SECONDS)
    if web_timeout <= 0 or wait < web_timeout / 2:
        return []  # WEB_TIMEOUT=0: gunicorn never kills a worker
    hint = (
        f"Lower WEBHOOKHUB_TEST_WAIT_SECONDS (default {DEFAULT_TEST_WAIT_SECONDS}) to well "
        "under half of WEB_TIMEOUT, or raise WEB_TIMEOUT (the Procfile passes it to "
        "gunicorn as --timeout). A test whose result takes longer is still sent and "
        "recorded; the caller polls for it."
    )
    if wait >= web_timeout:
        return [
            Error(
                f"WEBHOOKHUB_TEST_WAIT_SECONDS ({wait:g}) is not below WEB_TIMEOUT "
                f"({web_timeout}): gunicorn kills the web worker while a test waits for a "
                "slow receiver.",
                hint=hint,
                id="webhookhub.E004",
            )
        ]
    return [
        Warning(
            f"WEBHOOKHUB_TEST_WAIT_SECONDS ({wait:g}) is half of WEB_TIMEOUT "
            f"({web_timeout}) or more: little time is left for the rest of the request "
            "before gunicorn kills the web worker.",
            hint=hint,
            id="webhookhub.W001",
        )
    ]


@register(TAG)
def check_metrics_allowed_ips(app_configs=None, **kwargs) -> list:
    """E005: every WEBHOOKHUB_METRICS_ALLOWED_IPS entry is an address or a network."""
    _networks, invalid = allowed_networks(tuple(settings.WEBHOOKHUB_METRICS_ALLOWED_IPS))
    if not invalid:
        return []
    return [
        Error(
            f"WEBHOOKHUB_METRICS_ALLOWED_IPS has entries that are not IP addresses or "
            f"networks: {', '.join(repr(e) for e in invalid)}. /metrics allows no one by them.",
            hint="List IPv4/IPv6 addresses or CIDR networks, comma-separated, e.g. "
            "10.0.0.0/8,192.0.2.7,2001:db8::/32; leave it empty to not restrict by address.",
            id="webhookhub.E005",
        )
    ]


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2], query=""))


@register(TAG, deploy=True)
def check_redis(app_configs=None, **kwargs) -> list:
    """E006 (--deploy): with REDIS_URL set, Redis is the broker and must answer."""
    url = settings.REDIS_URL
    if not url:
        return []
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
        )
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        return [
            Error(
                f"Redis at REDIS_URL ({_without_credentials(url)}) does not answer: "
                f"{exc.__class__.__name__}: {exc}",
                hint="Start Redis or correct REDIS_URL: it is django-q2's broker, the "
                "shared rate-limit buckets and API throttle counters. Leave REDIS_URL "
                "empty to use the database broker instead.",
                id="webhookhub.E006",
            )
        ]
    return []
