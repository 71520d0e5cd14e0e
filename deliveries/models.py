"""Delivery state: one row per (event, endpoint), one attempt row per HTTP try."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

# CircuitState lives with the circuit math; `deliveries.models.CircuitState` stays an
# import path for the code that reads EndpointHealth rows.
from deliveries.policy import CircuitState
from webhookhub.ids import delivery_id


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    IN_FLIGHT = "in_flight", _("In flight")
    RETRYING = "retrying", _("Retrying")
    SUCCEEDED = "succeeded", _("Succeeded")
    DEAD = "dead", _("Dead")
    CANCELLED = "cancelled", _("Cancelled")


# The status groupings, defined once (deliveries.lifecycle moves rows between them).
# Waiting: not sent yet or to be sent again; `next_attempt_at` says when (NULL: held).
WAITING_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
FINAL_STATUSES = (DeliveryStatus.SUCCEEDED, DeliveryStatus.DEAD, DeliveryStatus.CANCELLED)
# What people can send again (in-flight rows are being sent right now).
RESENDABLE_STATUSES = (*WAITING_STATUSES, *FINAL_STATUSES)
# Not received, and people may want them sent again ("recover", "retry now").
FAILED_STATUSES = (DeliveryStatus.RETRYING, DeliveryStatus.DEAD)
RETRYABLE_STATUSES = (*FAILED_STATUSES, DeliveryStatus.CANCELLED, DeliveryStatus.PENDING)


class Trigger(models.TextChoices):
    AUTO = "auto", _("First attempt")
    RETRY = "retry", _("Scheduled retry")
    REPLAY = "replay", _("Replay")
    MANUAL = "manual", _("Retried by hand")
    TEST = "test", _("Test event")


# The event type of test events. A delivery of one stays a test whatever re-sends it
# (retry now, replay): sent once per request, never retried, not counted for health.
TEST_EVENT_TYPE = "webhookhub.test"
# An endpoint verification challenge (deliveries.verification): sent like a test — past
# every gate, the verification hold included, once, never retried.
VERIFICATION_EVENT_TYPE = "webhookhub.endpoint.verification"
TEST_LIKE_EVENT_TYPES = (TEST_EVENT_TYPE, VERIFICATION_EVENT_TYPE)

# Test events are sent past every gate and never again; ordered endpoints queue only
# these triggers (replays and tests bypass the queue).
ORDERED_TRIGGERS = (Trigger.AUTO, Trigger.RETRY)


def due_q(now) -> Q:
    """The one "due" predicate: waiting deliveries whose time has come. (Held rows have
    no `next_attempt_at`; deferred ones have it in the future.)"""
    return Q(status__in=WAITING_STATUSES, next_attempt_at__lte=now)


class Delivery(models.Model):
    """One event to one endpoint, until it succeeds, dies or is cancelled.

    `next_attempt_at` is when a waiting delivery is due. While a worker holds it the
    status is `in_flight`, `claimed_until` is the end of its lease and `lease_token`
    names the holder; an expired lease makes the delivery due again.
    """

    public_id = models.CharField(
        max_length=32, unique=True, default=delivery_id, editable=False, verbose_name=_("public id")
    )
    event = models.ForeignKey(
        "events.Event", on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("event")
    )
    endpoint = models.ForeignKey(
        "endpoints.Endpoint",
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("endpoint"),
    )
    status = models.CharField(
        max_length=16,
        choices=DeliveryStatus.choices,
        default=DeliveryStatus.PENDING,
        verbose_name=_("status"),
    )
    attempt_count = models.PositiveIntegerField(default=0, verbose_name=_("attempt count"))
    next_attempt_at = models.DateTimeField(null=True, blank=True, verbose_name=_("next attempt at"))
    claimed_until = models.DateTimeField(null=True, blank=True, verbose_name=_("claimed until"))
    lease_token = models.CharField(
        max_length=32, blank=True, editable=False, verbose_name=_("lease token")
    )
    next_trigger = models.CharField(
        max_length=16,
        choices=Trigger.choices,
        default=Trigger.AUTO,
        editable=False,
        verbose_name=_("next trigger"),
    )
    next_trigger_by = models.CharField(
        max_length=150, blank=True, editable=False, verbose_name=_("next trigger by")
    )
    last_attempt_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last attempt at"))
    last_status_code = models.PositiveSmallIntegerField(
        null=True, blank=True, verbose_name=_("last status code")
    )
    last_error = models.CharField(max_length=500, blank=True, verbose_name=_("last error"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))
    completed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("completed at"))

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="delivery_one_per_endpoint")
        ]
        indexes = [
            # The dispatcher's "due" scan: a range scan over waiting rows only.
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_due",
                condition=Q(status__in=["pending", "retrying"]),
            ),
            # A drainer's claim: the due rows of one endpoint, oldest first.
            models.Index(
                fields=["endpoint", "next_attempt_at", "id"],
                name="delivery_endpoint_due",
                condition=Q(status__in=["pending", "retrying"]),
            ),
            # Expired leases (worker died mid-request).
            models.Index(
                fields=["claimed_until"],
                name="delivery_lease",
                condition=Q(status="in_flight"),
            ),
            models.Index(fields=["endpoint", "-created_at"], name="delivery_endpoint_recent"),
            # Per-endpoint counts by status over a time range (admin 24 h health).
            models.Index(
                fields=["endpoint", "status", "created_at"], name="delivery_endpoint_status"
            ),
            models.Index(fields=["status", "-created_at"], name="delivery_status_recent"),
            # The admin's default list order: newest first without sorting the table.
            models.Index(fields=["-created_at", "-id"], name="delivery_recent"),
        ]
        permissions = [("replay_delivery", "Can replay, retry and recover deliveries")]

    def __str__(self):
        return self.public_id


class DeliveryAttempt(models.Model):
    """One HTTP request and what came back. History: never changed after it is written.

    The request body is not stored again here: it is always the event's `body`.
    Secrets in `request_headers` are masked before they are stored.
    """

    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="attempts", verbose_name=_("delivery")
    )
    number = models.PositiveIntegerField(verbose_name=_("number"))
    trigger = models.CharField(max_length=16, choices=Trigger.choices, verbose_name=_("trigger"))
    triggered_by = models.CharField(max_length=150, blank=True, verbose_name=_("triggered by"))
    started_at = models.DateTimeField(verbose_name=_("started at"))
    duration_ms = models.PositiveIntegerField(default=0, verbose_name=_("duration ms"))
    request_url = models.URLField(max_length=2000, verbose_name=_("request url"))
    request_headers = models.JSONField(default=dict, verbose_name=_("request headers"))
    response_status_code = models.PositiveSmallIntegerField(
        null=True, blank=True, verbose_name=_("response status code")
    )
    response_headers = models.JSONField(
        default=dict, blank=True, verbose_name=_("response headers")
    )
    response_body = models.TextField(blank=True, verbose_name=_("response body"))
    response_body_truncated = models.BooleanField(
        default=False, verbose_name=_("response body truncated")
    )
    error_kind = models.CharField(max_length=32, blank=True, verbose_name=_("error kind"))
    error_message = models.CharField(max_length=500, blank=True, verbose_name=_("error message"))
    succeeded = models.BooleanField(default=False, verbose_name=_("succeeded"))

    class Meta:
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        ordering = ["delivery", "number"]
        indexes = [
            models.Index(fields=["delivery", "number"], name="attempt_delivery_number"),
            # Dashboard windows read counts and latency percentiles from this index alone
            # (PostgreSQL; other databases ignore INCLUDE).
            models.Index(
                fields=["started_at"],
                include=["duration_ms", "succeeded"],
                name="attempt_started",
            ),
        ]

    def __str__(self):
        return _("Attempt %(number)s") % {"number": self.number}

    @property
    def request_body(self) -> str:
        return self.delivery.event.body


class EndpointHealth(models.Model):
    """How delivery to one endpoint is going, and who is delivering to it now.

    Kept apart from the endpoint's configuration row so that delivering (many claims
    and results a second) and support editing the endpoint never wait on each other,
    and publishing (which references the endpoint row) never waits on delivery. Written
    only by `deliveries.health` (circuit, streak, auto-disable, rate bucket) and
    `deliveries.engine` (the drain lease).
    """

    endpoint = models.OneToOneField(
        "endpoints.Endpoint",
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="health",
        verbose_name=_("endpoint"),
    )
    circuit_state = models.CharField(
        max_length=16,
        choices=CircuitState.choices,
        default=CircuitState.CLOSED,
        verbose_name=_("circuit state"),
    )
    consecutive_failures = models.PositiveIntegerField(
        default=0, verbose_name=_("consecutive failures")
    )
    failing_since = models.DateTimeField(null=True, blank=True, verbose_name=_("failing since"))
    circuit_opened_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("circuit opened at")
    )
    circuit_open_count = models.PositiveIntegerField(
        default=0, verbose_name=_("circuit open count")
    )
    # Open: when the probe may go. Half-open: when the probe's claim runs out.
    circuit_retry_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("circuit retry at")
    )
    failure_notice_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("failure notice at")
    )
    # The last warning stage sent in this failure streak (0: none; 50, 75, 90: percent of
    # the auto-disable window); back to 0 when the streak ends.
    failure_warning_stage = models.PositiveSmallIntegerField(
        default=0, verbose_name=_("failure warning stage")
    )
    # Database token bucket for rate_limit_per_second (when Redis is not configured).
    rate_tokens = models.FloatField(null=True, blank=True, verbose_name=_("rate tokens"))
    rate_checked_at = models.DateTimeField(null=True, blank=True, verbose_name=_("rate checked at"))
    # The drain lease: one worker at a time claims and sends this endpoint's deliveries.
    drain_holder = models.CharField(max_length=64, blank=True, verbose_name=_("drain holder"))
    drain_until = models.DateTimeField(null=True, blank=True, verbose_name=_("drain until"))

    class Meta:
        verbose_name = _("endpoint health")
        verbose_name_plural = _("endpoint health")
        permissions = [("manage_circuit", "Can probe now and close circuits")]
        indexes = [
            models.Index(
                fields=["failing_since"],
                name="health_failing",
                condition=Q(failing_since__isnull=False),
            ),
        ]

    def __str__(self):
        return f"health of endpoint {self.endpoint_id}"


class WorkerLease(models.Model):
    """A named lease shared by every cluster (e.g. "dispatcher": one loop at a time).

    Taken and renewed by conditional UPDATEs, so it works the same on SQLite and
    PostgreSQL and survives the death of its holder (the lease just expires).
    """

    name = models.CharField(max_length=50, primary_key=True, verbose_name=_("name"))
    holder = models.CharField(max_length=64, blank=True, verbose_name=_("holder"))
    expires_at = models.DateTimeField(verbose_name=_("expires at"))
    heartbeat_at = models.DateTimeField(null=True, blank=True, verbose_name=_("heartbeat at"))

    class Meta:
        verbose_name = _("worker lease")
        verbose_name_plural = _("worker leases")

    def __str__(self):
        return self.name
