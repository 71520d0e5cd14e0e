"""django-q2 entry points. Thin: each calls the engine or the dispatcher."""

import logging

from django.db import close_old_connections

from deliveries import cluster, dispatch, engine, health
from deliveries.dashboard import dashboard
from endpoints.services import endpoints_purge_expired_secrets

logger = logging.getLogger(__name__)


def drain(endpoint_ids: list[int]) -> int:
    """Deliver what is due for these endpoints (see deliveries.engine); returns how many
    attempts were made."""
    close_old_connections()
    with cluster.running_loop():
        return len(engine.drain(endpoint_ids))


def deliver(ids: list[int], token: str | None = None) -> int:
    """Tasks queued before the upgrade to drains named deliveries: drain their
    endpoints."""
    close_old_connections()
    with cluster.running_loop():
        return len(engine.deliver(ids))


def dispatch_loop() -> int:
    """The dispatcher loop (see deliveries.dispatch); started by schedule and chained.
    Each loop (about a minute) first sends the failure warnings that are due."""
    close_old_connections()
    try:
        health.failure_warnings()
    except Exception:
        logger.exception("could not check failure warnings")
    with cluster.running_loop():
        return dispatch.dispatch_loop()


def ensure_dispatcher() -> None:
    """Scheduled every minute: restart the dispatcher chain if it is not running."""
    if not dispatch.dispatcher_running():
        dispatch._enqueue_loop()


def housekeeping() -> dict:
    """Hourly: failure warnings due, the failing-endpoint digest, purge expired rotated
    secrets."""
    close_old_connections()
    return {
        "warnings_sent": health.failure_warnings(),
        "endpoints_reported": health.failure_digest(),
        "secrets_purged": endpoints_purge_expired_secrets(),
    }


def refresh_dashboard() -> None:
    """Every minute: recompute the admin dashboard figures into the shared cache."""
    close_old_connections()
    dashboard(refresh=True)
