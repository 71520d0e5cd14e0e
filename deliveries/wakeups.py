"""PostgreSQL: a running drain hears of new work instead of polling for it.

A transaction that inserts deliveries notifies `CHANNEL` with each endpoint's id (the
notification is sent when it commits, not before, and not at all if it rolls back);
a drain LISTENs while it runs and asks an endpoint for due deliveries when it hears of
it, and otherwise only every `SAFETY_SECONDS` (retries coming due, replays). Without
PostgreSQL (SQLite) nothing listens and the drain polls as before.

Wake-ups of idle endpoints are the broker's (`deliveries.dispatch.wake`): this only
spares a drain that is already running its polls.
"""

import logging
from collections.abc import Iterable

from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)

CHANNEL = "webhookhub_due"
# How often a listening drain asks an endpoint that had nothing due anyway.
SAFETY_SECONDS = 0.1

NOTIFY_SQL = f"SELECT pg_notify('{CHANNEL}', e::text) FROM unnest(%(notify)s::bigint[]) AS e"  # noqa: S608


def listen() -> bool:
    """Start listening on this process's database connection; False where there is
    nothing to listen to (not PostgreSQL) or the LISTEN failed."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return False
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
    except DatabaseError:
        logger.warning("LISTEN failed; this drain polls", exc_info=True)
        return False
    return True


def unlisten() -> None:
    """Stop listening and drop what was heard (the connection outlives the drain)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"UNLISTEN {CHANNEL}")
        heard(timeout=0)
    except DatabaseError:
        logger.warning("UNLISTEN failed", exc_info=True)


def heard(*, timeout: float) -> set[int]:
    """The endpoint ids notified since the last call, waiting up to `timeout` seconds
    for the first one (0: just look)."""
    raw = connection.connection
    if raw is None:  # closed since: the drain falls back to its safety polls
        return set()
    ids = set()
    try:
        for notify in raw.notifies(timeout=timeout, stop_after=1):
            ids.update(_ids([notify.payload]))
        if ids:  # what arrived together is taken together
            ids.update(_ids(n.payload for n in raw.notifies(timeout=0)))
    except Exception:  # a lost connection: Django reconnects on the next query
        logger.warning("could not read notifications", exc_info=True)
    return ids


def _ids(payloads: Iterable[str]) -> set[int]:
    return {int(p) for p in payloads if p.isdigit()}
