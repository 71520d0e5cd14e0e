"""GET /metrics: django-prometheus's request and database metrics plus webhookhub's.

In multiprocess mode (PROMETHEUS_MULTIPROC_DIR set, see settings) every process of the
machine — gunicorn workers, qcluster workers, cron commands — writes its counters to
files in that directory, and this view adds them up with prometheus_client's
MultiProcessCollector; the state gauges come from the database (`deliveries.metrics`).
Without it, the view exports this process's own registry.

A process that exits leaves its files behind (its counts must not vanish: counters
never go backwards), and qcluster replaces a worker every few hundred tasks, so the
directory would grow without end and every scrape would read more files.
`compact()` folds the counter and histogram files of dead processes into one archive
file per type, at most once a minute, holding an exclusive lock that scrapes take
shared, so no scrape ever sees a count twice or not at all.

Open by default, as Prometheus expects; `WEBHOOKHUB_METRICS_TOKEN` (a bearer token) and
`WEBHOOKHUB_METRICS_ALLOWED_IPS` (client addresses) close it (`metrics_refusal`).
"""

import contextlib
import fcntl
import glob
import hmac
import ipaddress
import json
import logging
import os
import threading
import time
import uuid
from functools import lru_cache

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest, values
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

from deliveries.metrics import STATE

logger = logging.getLogger(__name__)

COMPACT_EVERY = 60.0  # seconds, per web process
SUMMABLE_TYPES = ("counter", "histogram")
ARCHIVE = "archive"  # in place of a pid: counter_archive.db, histogram_archive.db
FOLDED = "webhookhub_metrics_folded"  # archive bookkeeping, never exported

_last_compact = 0.0
_compact_lock = threading.Lock()


def multiprocess_dir() -> str | None:
    """The shared directory, if this process really writes its metrics there."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path and getattr(values.ValueClass, "_multiprocess", False):
        return path
    return None


@contextlib.contextmanager
def _dir_lock(path: str, mode: int):
    with open(os.path.join(path, ".lock"), "a+") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pid_of(filename: str) -> str:
    return os.path.basename(filename)[: -len(".db")].rsplit("_", 1)[-1]


def _alive(pid: str) -> bool:
    if not pid.isdigit():
        return True  # the archive, or a name we did not write: leave it alone
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited: it will never write again
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def compact(path: str) -> int:
    """Fold the counter/histogram files of exited processes into the archives.

    Returns how many files were removed; 0 if another process is compacting. Relies on
    every writer living in this machine's process namespace (one directory per
    machine or container, as prometheus_client requires anyway).
    """
    lock = open(os.path.join(path, ".lock"), "a+")  # noqa: SIM115 (closed below)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return 0
    removed = 0
    try:
        me = str(os.getpid())
        for typ in SUMMABLE_TYPES:
            files = glob.glob(os.path.join(path, f"{typ}_*.db"))
            dead = [f for f in files if _pid_of(f) != me and not _alive(_pid_of(f))]
            if dead or glob.glob(os.path.join(path, f"{typ}_fold-*.folding")):
                removed += _fold(path, typ, dead)
    finally:
        lock.close()  # releases the lock
    return removed


def _fold(path: str, typ: str, dead: list[str]) -> int:
    """Add the `dead` files into the archive of `typ`, then delete them.

    Crash-safe without double counting: the archive carries a generation number; the
    files are first renamed `<type>_fold-<next generation>-<pid>-<random>.folding` (scrapes read
    only `*.db`; the type prefix is what prometheus_client reads the type from), then the
    new archive replaces the old one in one rename (the commit point), then they are
    deleted. A run that finds leftovers knows from their generation whether the archive
    already holds them.
    """
    archive = os.path.join(path, f"{typ}_{ARCHIVE}.db")
    generation = 0
    if os.path.exists(archive):
        for key, value, _ts, _pos in MmapedDict.read_all_values_from_file(archive):
            if json.loads(key)[0] == FOLDED:
                generation = int(value)
    pending = []
    for leftover in glob.glob(os.path.join(path, f"{typ}_fold-*.folding")):
        if int(os.path.basename(leftover).split("-")[1]) <= generation:
            os.remove(leftover)  # the archive already holds it
        else:
            pending.append(leftover)
    if not pending and not dead:
        return 0
    for filename in dead:
        unique = f"{generation + 1}-{_pid_of(filename)}-{uuid.uuid4().hex[:8]}"
        hidden = os.path.join(path, f"{typ}_fold-{unique}.folding")
        os.replace(filename, hidden)
        pending.append(hidden)
    sources = [archive, *pending] if os.path.exists(archive) else pending
    merged = MultiProcessCollector.merge(sources, accumulate=False)
    scratch = os.path.join(path, f".{typ}_{ARCHIVE}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.remove(scratch)
    store = MmapedDict(scratch)
    try:
        for metric in merged:
            if metric.name == FOLDED:
                continue
            for sample in metric.samples:
                names, label_values = list(sample.labels), list(sample.labels.values())
                key = mmap_key(metric.name, sample.name, names, label_values, metric.documentation)
                store.write_value(key, sample.value, 0.0)
        store.write_value(mmap_key(FOLDED, FOLDED, [], [], "generation"), generation + 1, 0.0)
    finally:
        store.close()
    os.replace(scratch, archive)  # the commit point
    for hidden in pending:
        os.remove(hidden)
    return len(dead)


def _maybe_compact(path: str) -> None:
    global _last_compact
    with _compact_lock:
        if time.monotonic() - _last_compact < COMPACT_EVERY:
            return
        _last_compact = time.monotonic()
    try:
        removed = compact(path)
        if removed:
            logger.info("compacted metrics files of exited processes", extra={"files": removed})
    except Exception:
        logger.warning("could not compact the metrics directory", exc_info=True)


class _MultiProcessFiles:
    """prometheus_client's MultiProcessCollector, read under the directory's shared lock."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self):
        with _dir_lock(self.path, fcntl.LOCK_SH):
            files = glob.glob(os.path.join(self.path, "*.db"))
            metrics = MultiProcessCollector.merge(files, accumulate=True)
        return [metric for metric in metrics if metric.name != FOLDED]


class _Scrape:
    def __init__(self, *collectors) -> None:
        self.collectors = collectors

    def collect(self):
        for collector in self.collectors:
            yield from collector.collect()


@lru_cache(maxsize=8)
def allowed_networks(entries: tuple[str, ...]) -> tuple[list, list[str]]:
    """The networks of WEBHOOKHUB_METRICS_ALLOWED_IPS, and the entries that are none."""
    networks, invalid = [], []
    for entry in (e.strip() for e in entries):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            invalid.append(entry)
    return networks, invalid


def _address_allowed(remote_addr: str, entries: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    candidates = [address]
    if address.version == 6 and address.ipv4_mapped:  # a dual-stack socket's IPv4 peer
        candidates.append(address.ipv4_mapped)
    networks, _invalid = allowed_networks(entries)  # an invalid entry allows no one
    return any(a in net for a in candidates for net in networks if a.version == net.version)


def _plain(text: str, status: int) -> HttpResponse:
    return HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")


def metrics_refusal(request) -> HttpResponse | None:
    """403 or 401 when /metrics is closed to this request; None when it may be served.

    The address is REMOTE_ADDR, the direct peer: behind a proxy, that is the proxy.
    """
    entries = tuple(settings.WEBHOOKHUB_METRICS_ALLOWED_IPS)
    if entries and not _address_allowed(request.META.get("REMOTE_ADDR", ""), entries):
        return _plain("Forbidden: /metrics does not answer this address.", 403)
    token = settings.WEBHOOKHUB_METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        # Constant time, so the token cannot be guessed a character at a time.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            response = _plain("Unauthorized: /metrics needs its bearer token.", 401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return None


def metrics_view(request):
    """Prometheus text format: counters of every process, state gauges from the database."""
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    path = multiprocess_dir()
    if path:
        _maybe_compact(path)
        counters = _MultiProcessFiles(path)
    else:
        counters = REGISTRY
    body = generate_latest(_Scrape(counters, STATE))
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
