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
