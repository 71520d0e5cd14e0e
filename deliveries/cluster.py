"""What webhookhub's long-running tasks need to know about the django-q2 cluster they
run in: is it stopping, and are other tasks waiting for a worker?

django-q2 has no hook for either. On SIGTERM to the main process it sets the
Sentinel's stop event and lets every worker finish the task it has (and those already
queued), so a task that loops (a drain, the dispatcher) must notice and return within
seconds; on SIGTERM to the whole process group every process gets the signal, and a
worker's default is to die mid-request. So:

- a worker (forked by the Sentinel: the Sentinel object is on its inherited stack) is
  asked about the Sentinel's stop event and task queue;
- a worker's SIGTERM handler (installed when it is spawned) makes `stopping()` true:
  the task winds down (finishes the requests it has in flight, records them, gives
  back what it has not sent) and the worker then exits.

Outside a cluster (tests, management commands) nothing is stopping and other work is
always assumed to be waiting (so nothing lingers).
"""

import logging
import os
import signal
import sys
import threading

from webhookhub import tracing

logger = logging.getLogger(__name__)

# A worker still alive this long after SIGTERM exits anyway: a deploy's grace is
# usually 30 s, after which everything is SIGKILLed; what it held is given back by the
# lease expiry either way, and going first keeps "stopped within the grace" true
# whatever held it (a receiver slower than its timeout, a stuck library call).
STOP_DEADLINE_SECONDS = 25

_signalled = threading.Event()
_busy = threading.Event()  # one of our loop tasks is running in this process
_sentinel = None
_looked = False


def _find_sentinel():
    """The django-q2 Sentinel that forked this worker, from the inherited stack."""
    global _sentinel, _looked
    if _looked:
        return _sentinel
    _looked = True
    try:
        from django_q.cluster import Sentinel
    except Exception:  # pragma: no cover - django-q2 missing or changed
        return None
    frame = sys._getframe()
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Sentinel):
            _sentinel = candidate
            break
        frame = frame.f_back
    return _sentinel


def stopping() -> bool:
    """True once this worker's cluster is shutting down (or the worker got SIGTERM).

    Read without taking the Event's lock (`Event.is_set()` acquires a lock shared with
    the Sentinel; a worker killed while holding it would hang the whole cluster's
    shutdown): the flag's semaphore value, where the platform has it."""
    if _signalled.is_set():
        return True
    sentinel = _find_sentinel()
    if sentinel is None:
        return False
    try:
        return sentinel.stop_event._flag.get_value() > 0
    except (AttributeError, NotImplementedError):  # pragma: no cover - macOS, changed
        try:
            return bool(sentinel.stop_event.is_set())
        except Exception:
            return False


def others_waiting() -> bool:
    """True if tasks are queued for this cluster's workers (so a task that could
    linger should give its worker back)."""
    sentinel = _find_sentinel()
    if sentinel is None:
        return True
    try:
        return not sentinel.task_queue.empty()
    except Exception:  # pragma: no cover
        return True


def _on_sigterm(signum, frame):
    if not _signalled.is_set():
        _signalled.set()
        watchdog = threading.Timer(STOP_DEADLINE_SECONDS, _exit_now)
        watchdog.daemon = True
        watchdog.start()
    if not _busy.is_set():
        raise SystemExit(0)  # idle worker: nothing to finish


def _exit_now() -> None:
    logger.warning("worker still running %s s after SIGTERM: exiting", STOP_DEADLINE_SECONDS)
    tracing.flush(timeout_millis=1000)  # os._exit skips the exit handlers
    os._exit(0)


def worker_started(sender=None, **kwargs) -> None:
    """django-q2 `post_spawn`, in the new worker: wind down on SIGTERM instead of dying;
    export its spans when it exits."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    tracing.worker_started()
    _find_sentinel()


class running_loop:
    """Marks one of our loop tasks as running; when it ends after a SIGTERM, the
    worker exits (its Sentinel died with the process group: no more tasks come)."""

    def __enter__(self):
        _busy.set()
        return self

    def __exit__(self, *exc):
        _busy.clear()
        if _signalled.is_set():
            logger.info("worker stopping after SIGTERM")
            raise SystemExit(0)
        return False
