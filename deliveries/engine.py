"""The worker side of delivery: claim due deliveries, send them, record what happened.

Claiming (and which deliveries each endpoint admits now) is `deliveries.claims`. The
lease outlasts the endpoint's timeout, so a slow request is never handed to a second
worker, and a worker that dies leaves a lease that expires and makes the row due again.
The attempt row, the delivery's next state and the endpoint's health are written in one
transaction.
"""

import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from deliveries import endpoint_health, metrics, signing, transport
from deliveries.claims import connect_timeout_for, deliveries_claim, ordered_release_next
from deliveries.dispatch import enqueue_on_commit
from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus, Trigger
from deliveries.policy import RetryPolicy, next_delay

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    delivery: Delivery
    request: transport.OutboundRequest
    result: transport.AttemptResult | None  # None: not sent, the lease ran short
    started_at: datetime


def build_request(delivery: Delivery, *, now: datetime) -> transport.OutboundRequest:
    """The signed request for this delivery's next attempt: same body every time."""
    endpoint = delivery.endpoint
    body = delivery.event.body.encode()
    signed = signing.webhook_headers(
        msg_id=delivery.event.public_id,
        timestamp=int(now.timestamp()),
        body=body,
        secrets=endpoint.active_secrets(now),
    )
    headers = transport.compose_headers(
        signed=signed, custom=endpoint.headers, bearer_token=endpoint.auth_token or None
    )
    return transport.OutboundRequest(
        url=endpoint.url,
        body=body,
        headers=headers,
        secret_header_names=frozenset(name.lower() for name in endpoint.headers or {}),
        timeout=float(endpoint.timeout_seconds),
        connect_timeout=connect_timeout_for(endpoint.timeout_seconds),
        allow_private=settings.WEBHOOKHUB_ALLOW_PRIVATE_URLS,
    )


_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None


def _executor() -> ThreadPoolExecutor:
    """One thread pool per worker process (rebuilt after a fork)."""
    import os

    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():
        _pool = ThreadPoolExecutor(
            max_workers=settings.WEBHOOKHUB_SEND_CONCURRENCY, thread_name_prefix="webhookhub-send"
        )
        _pool_pid = os.getpid()
    return _pool


def _send_one(delivery: Delivery, request: transport.OutboundRequest) -> Outcome:
    started_at = timezone.now()
    # Start only if the whole request fits in what is left of the lease; otherwise the
    # lease could expire mid-request and a second worker send the same delivery.
    latest_start = delivery.claimed_until - timedelta(
        seconds=request.timeout + connect_timeout_for(request.timeout)
    )
    if started_at > latest_start:
        return Outcome(delivery, request, None, started_at)
    return Outcome(delivery, request, transport.send(request), started_at)


def deliveries_send(claimed: Sequence[Delivery], *, token: str) -> list[Outcome]:
    """Send claimed deliveries concurrently; record each result as it comes back.

    HTTP runs on the pool's threads (no database there); recording runs here, on the
    task's own connection, a few results per transaction.
    """
    if not claimed:
        return []
    now = timezone.now()
    pending: set[Future] = set()
    outcomes: list[Outcome] = []
    for delivery in claimed:
        pending.add(_executor().submit(_send_one, delivery, build_request(delivery, now=now)))
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        batch = [future.result() for future in done]
        sent = [outcome for outcome in batch if outcome.result is not None]
        if len(sent) < len(batch):
            logger.warning("%d deliveries not sent: lease ran short", len(batch) - len(sent))
        attempts_record(sent, token=token)
        outcomes.extend(sent)
    return outcomes


def attempts_record(outcomes: Sequence[Outcome], *, token: str) -> None:
    """Write the attempt rows and move each delivery to its next state, atomically.

    A delivery whose lease is no longer ours (it expired and another worker took it)
    keeps its attempt row — the request did happen — but its state is not touched.
    """
    if not outcomes:
        return
    now = timezone.now()
    with transaction.atomic():
        DeliveryAttempt.objects.bulk_create(
            [_attempt_row(outcome) for outcome in outcomes], batch_size=500
        )
        successes: dict[int, list[int]] = {}
        finished_endpoints = set()
        dead = 0  # [metrics] deliveries this batch finished as dead
        for outcome in outcomes:
            if outcome.result.succeeded:
                successes.setdefault(outcome.result.status_code, []).append(outcome.delivery.pk)
                finished_endpoints.add(outcome.delivery.endpoint_id)
            elif _record_failure(outcome, token=token, now=now):
                finished_endpoints.add(outcome.delivery.endpoint_id)
                dead += 1  # [metrics]
        for status_code, pks in successes.items():
            Delivery.objects.filter(pk__in=pks, lease_token=token).update(
                status=DeliveryStatus.SUCCEEDED,
                attempt_count=F("attempt_count") + 1,
                last_attempt_at=now,
                last_status_code=status_code,
                last_error="",
                next_attempt_at=None,
                claimed_until=None,
                lease_token="",
                completed_at=now,
                updated_at=now,
            )
        due_now = endpoint_health.endpoints_after_attempts(outcomes, now=now)
        due_now += ordered_release_next(finished_endpoints, now=now)
        enqueue_on_commit(due_now)
    metrics.attempts_recorded(outcomes, dead=dead)  # [metrics] counters for /metrics
    for outcome in outcomes:
        _log(outcome)


def _record_failure(outcome: Outcome, *, token: str, now: datetime) -> bool:
    """Schedule the next try, or make the delivery dead. True if it is dead."""
    delivery, result = outcome.delivery, outcome.result
    attempt_no = delivery.attempt_count + 1
    error = result.error_message or result.error_kind or ""
    if result.error_kind == "http_status" and result.body.strip():
        # What the receiver said is what support needs first: "HTTP 503: {"error": …}".
        error = f"{error}: {' '.join(result.body.split())[:300]}"
    error = error[:500]
    if delivery.next_trigger == Trigger.TEST:
        delay = None  # a test event shows its result at once; it is not retried
    else:
        policy = RetryPolicy.from_dict(delivery.endpoint.retry_policy or None)
        delay = next_delay(policy, attempt_no, result, now=now)
    common = {
        "attempt_count": F("attempt_count") + 1,
        "last_attempt_at": now,
        "last_status_code": result.status_code,
        "last_error": error,
        "claimed_until": None,
        "lease_token": "",
        "updated_at": now,
    }
    if delay is None:
        died = Delivery.objects.filter(pk=delivery.pk, lease_token=token).update(
            status=DeliveryStatus.DEAD, next_attempt_at=None, completed_at=now, **common
        )
        if died and delivery.next_trigger != Trigger.TEST:
            endpoint_health.delivery_died(delivery)
        return bool(died)
    Delivery.objects.filter(pk=delivery.pk, lease_token=token).update(
        status=DeliveryStatus.RETRYING,
        next_attempt_at=now + delay,
        next_trigger=Trigger.RETRY,
        next_trigger_by="",
        **common,
    )
    return False


def _attempt_row(outcome: Outcome) -> DeliveryAttempt:
    delivery, request, result = outcome.delivery, outcome.request, outcome.result
    return DeliveryAttempt(
        delivery_id=delivery.pk,
        number=delivery.attempt_count + 1,
        trigger=delivery.next_trigger,
        triggered_by=delivery.next_trigger_by,
        started_at=outcome.started_at,
        duration_ms=result.duration_ms,
        request_url=request.url,
        request_headers=transport.mask_headers(
            request.headers, secret_names=request.secret_header_names
        ),
        response_status_code=result.status_code,
        response_headers=transport.mask_headers(result.headers),
        response_body=result.body,
        response_body_truncated=result.body_truncated,
        error_kind=result.error_kind or "",
        error_message=(result.error_message or "")[:500],
        succeeded=result.succeeded,
    )


def _log(outcome: Outcome) -> None:
    delivery, result = outcome.delivery, outcome.result
    logger.info(
        "delivery attempt %s",
        "succeeded" if result.succeeded else "failed",
        extra={
            "event_id": delivery.event.public_id,
            "delivery_id": delivery.public_id,
            "endpoint_id": delivery.endpoint.public_id,
            "attempt": delivery.attempt_count + 1,
            "outcome": "succeeded" if result.succeeded else (result.error_kind or "failed"),
            "status_code": result.status_code,
            "duration_ms": result.duration_ms,
        },
    )


def deliver(ids: Iterable[int], *, token: str | None = None) -> list[Outcome]:
    """Claim, send and record `ids`: the whole job of one worker task."""
    lease, claimed = deliveries_claim(ids, token=token)
    return deliveries_send(claimed, token=lease)
