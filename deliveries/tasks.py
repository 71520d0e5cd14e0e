"""django-q2 entry points. Thin: each calls the engine or the dispatcher."""

from django.db import close_old_connections

from deliveries import dispatch, engine


def deliver(ids: list[int], token: str | None = None) -> int:
    """Claim, send and record a batch of deliveries; returns how many were sent."""
    close_old_connections()
    return len(engine.deliver(ids, token=token))


def dispatch_loop() -> int:
    """The dispatcher loop (see deliveries.dispatch); started by schedule and chained."""
    close_old_connections()
    return dispatch.dispatch_loop()


def ensure_dispatcher() -> None:
    """Scheduled every minute: restart the dispatcher chain if it is not running."""
    if not dispatch.dispatcher_running():
        dispatch._enqueue_loop()


def housekeeping() -> dict:
    """Hourly: mail the failing-endpoint digest, purge expired rotated secrets."""
    from deliveries.endpoint_health import failure_digest
    from endpoints.services import endpoints_purge_expired_secrets

    close_old_connections()
    return {
        "endpoints_reported": failure_digest(),
        "secrets_purged": endpoints_purge_expired_secrets(),
    }


def refresh_dashboard() -> None:
    """Every minute: recompute the admin dashboard figures into the shared cache."""
    from deliveries.dashboard import dashboard

    close_old_connections()
    dashboard(refresh=True)
