"""Recording what came back: the attempt rows and each delivery's next state, a wave at
a time, in one transaction — then the endpoints' health, and the notices.

One multi-row INSERT of attempt rows and one UPDATE per outcome kind (succeeded per
status code, retrying with a per-row time, dead), whatever the wave's size; the next
head of an ordered queue; the health rows last (deliveries, then health: one lock
order everywhere). A delivery whose lease is no longer ours keeps its attempt row but
its state is not touched.
"""

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, transaction
from django.utils import timezone

from deliveries import health, lifecycle, metrics, notices, transport, verification
from deliveries.models import Delivery, DeliveryAttempt, EndpointHealth, Trigger
from deliveries.policy import RetryPolicy, next_delay
from webhookhub import tracing

logger = logging.getLogger("deliveries.engine")  # the log lines support knows


@dataclass
class Outcome:
    delivery: Delivery
    request: transport.OutboundRequest
    result: transport.AttemptResult | None  # None: not sent, the lease ran short
    started_at: datetime
    span: object = None  # its webhookhub.attempt span (webhookhub.tracing), if tracing


def attempts_record(
    outcomes: Sequence[Outcome], *, token: str, known: dict[int, EndpointHealth] | None = None
) -> health.Aftermath:
    """Write the attempt rows and move each delivery to its next state, atomically:
    one multi-row INSERT, one UPDATE per outcome kind, then the endpoints' health.

    A delivery whose lease is no longer ours (it expired and another worker took it)
    keeps its attempt row — the request did happen — but its state is not touched.
    """
    now, started = timezone.now(), tracing.clock()
    verification.answers_judge(outcomes)  # a 2xx without its challenge is a failure
    successes: dict[int, list[int]] = defaultdict(list)
    failures = []
    finished_ordered = set()  # ordered endpoints whose head is done: the next may go
    for outcome in outcomes:
        delivery = outcome.delivery
        if outcome.result.succeeded:
            successes[outcome.result.status_code].append(delivery.pk)
        else:
            failures.append(_failure(outcome, now=now))
        if delivery.endpoint.ordered and (outcome.result.succeeded or failures[-1][1] is None):
            finished_ordered.add(delivery.endpoint_id)
    try:
        with transaction.atomic():
            DeliveryAttempt.objects.bulk_create(
                [_attempt_row(outcome) for outcome in outcomes], batch_size=500
            )
            lifecycle.succeed(successes, token=token, now=now)
            dead = set(lifecycle.fail(failures, token=token, now=now))
            lifecycle.release_ordered(finished_ordered, now=now)
            # Health last: deliveries, then health rows, in every transaction.
            after = health.after_attempts(
                [
                    (o.delivery.endpoint_id, o.result.succeeded, o.result.status_code)
                    for o in outcomes
                    if o.delivery.next_trigger != Trigger.TEST
                ],
                now=now,
                known=known,
            )
    except DatabaseError:
        # E.g. the endpoint was deleted meanwhile. The leases expire; nothing is lost.
        logger.exception("could not record %d attempts", len(outcomes))
        tracing.recorded(outcomes, started, failed=True)
        return health.Aftermath()
    tracing.recorded(outcomes, started)
    metrics.attempts_recorded(outcomes, dead=len(dead))  # [metrics] counters for /metrics
    notices.attempts_recorded(outcomes, dead=dead, retry_at={pk: at for pk, at, *_ in failures})
    for outcome in outcomes:
        if outcome.delivery.pk in dead and outcome.delivery.next_trigger != Trigger.TEST:
            notices.delivery_dead(outcome.delivery)
        _log(outcome)
    health.act_on(after, now=now)
    verification.answers_apply(outcomes)
    return after


def _failure(outcome: Outcome, *, now: datetime) -> tuple[int, datetime | None, int | None, str]:
    """(pk, next attempt or None for dead, status code, error) for a failed attempt."""
    delivery, result = outcome.delivery, outcome.result
    error = result.error_message or result.error_kind or ""
    if result.error_kind == "http_status" and result.body.strip():
        # What the receiver said is what support needs first: "HTTP 503: {"error": …}".
        error = f"{error}: {' '.join(result.body.split())[:300]}"
    if delivery.next_trigger == Trigger.TEST:
        delay = None  # a test event shows its result at once; it is not retried
    else:
        policy = RetryPolicy.from_dict(delivery.endpoint.retry_policy or None)
        delay = next_delay(policy, delivery.attempt_count + 1, result, now=now)
    return (delivery.pk, None if delay is None else now + delay, result.status_code, error[:500])


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
            # The attempt's trace (the JSON formatter adds the current one otherwise).
            **(tracing.log_fields(outcome.span) if outcome.span is not None else {}),
        },
    )
