"""Which deliveries of an endpoint may go now, and claiming them: the drain's admission.

Per endpoint (a `Lane` of a drain, which holds the endpoint's drain lease and so is
its only claimer), from its configuration and its health row:

- switched off, or awaiting verification (its challenge unanswered) → nothing but
  test events (the challenge is one);
- circuit open → nothing until the cooldown is over; then exactly one delivery (the
  oldest due) goes as the probe, the circuit half-open until its answer;
- ordered → only the head of its queue (oldest waiting by created_at, id), and only
  when nothing of the queue is in flight; the rest is held until the head is done.
  Replays and manual retries bypass the queue;
- `max_in_flight` → at most that many requests at once, counting requests under other
  leases; `rate_limit_per_second` → a token bucket (`deliveries.ratelimit`).

A test event is someone checking the endpoint right now: it goes past every gate. When
nothing holds an endpoint back, one statement claims whatever is due, tests included.
Waiting never counts as an attempt; the claim itself is `deliveries.lifecycle.claim`.
"""

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings

from deliveries import health, lifecycle, ratelimit
from deliveries.models import CircuitState, Delivery, DeliveryStatus, EndpointHealth, Trigger, due_q
from endpoints.models import Endpoint

TEST_BATCH = 20
# Claimed ahead (the everyday case only): when a claim has to run anyway, it also takes
# up to this many more (at most `max_in_flight`), kept ready so the next answers' room
# is refilled without a round trip to the database — while the request still fits in
# what is left of its lease (`fits_in_lease`, the test every send makes).
READY_AHEAD = 32
# A request starts only if it ends this long before its lease does (recording it, a
# slow name lookup), never right at the edge.
START_SLACK_SECONDS = 1.0
# A full endpoint (no room under its cap) is asked for test events this often, not on
# every answer.
TEST_POLL_SECONDS = 0.1


def connect_timeout_for(timeout_seconds: float) -> float:
    return min(5.0, float(timeout_seconds))


def fits_in_lease(delivery: Delivery, timeout_seconds: float, *, at: datetime) -> bool:
    """Whether a request to this delivery's endpoint started `at` ends before its lease
    does (otherwise the lease could expire mid-request and a second worker send it)."""
    needed = timeout_seconds + connect_timeout_for(timeout_seconds) + START_SLACK_SECONDS
    return at <= delivery.claimed_until - timedelta(seconds=needed)


def lease_for(timeout_seconds: int) -> timedelta:
    """How long a claim on a delivery to an endpoint with this timeout lasts."""
    return timedelta(
        seconds=timeout_seconds
        + connect_timeout_for(timeout_seconds)
        + settings.WEBHOOKHUB_LEASE_MARGIN_SECONDS
    )


@dataclass
class Lane:
    endpoint: Endpoint
    health: EndpointHealth
    mine: int = 0  # our requests in flight (tests excluded)
    others: int = 0  # requests under other leases (a previous holder's, a CLI test)
    probing: bool = False
    dry: bool = False  # the last claim found nothing due
    rate_wait_until: float = 0.0  # monotonic time the rate limit lets the next one go
    lost: bool = False  # its drain lease is gone: claim nothing more for it
    asked_at: float = 0.0  # monotonic time of its last claim
    # Claimed ahead, not yet sent (not in `mine`).
    ready: deque = field(default_factory=deque)
    tests_asked_at: float = 0.0  # monotonic time it was last asked for test events

    @property
    def pk(self) -> int:
        return self.endpoint.pk

    def lease(self) -> timedelta:
        return lease_for(self.endpoint.timeout_seconds)

    def take_ready(self, room: int, *, now: datetime) -> tuple[list[Delivery], list[int]]:
        """Up to `room` of the deliveries claimed ahead; and those whose lease is now too
        short for a request (to give back)."""
        taken, stale = [], []
        while self.ready and len(taken) < room:
            delivery = self.ready.popleft()
            fits = fits_in_lease(delivery, self.endpoint.timeout_seconds, at=now)
            (taken if fits else stale).append(delivery)
        return taken, [d.pk for d in stale]

    def give_back(self) -> list[int]:
        """Everything claimed ahead, to release (the lane is held back or done)."""
        pks = [delivery.pk for delivery in self.ready]
        self.ready.clear()
        return pks


def admit(lane: Lane, *, token: str, now: datetime) -> list[Delivery]:
    """The deliveries of this lane that may go now, claimed. Each is marked with
    whether it counts toward the lane's `max_in_flight` (`counted`)."""
    claim = _claimer(lane, token=token, now=now)
    endpoint, state = lane.endpoint, lane.health
    room = endpoint.max_in_flight - lane.mine - lane.others
    held_back = (
        not endpoint.enabled
        or endpoint.awaiting_verification
        or state.circuit_state != CircuitState.CLOSED
        or endpoint.ordered
        or endpoint.rate_limit_per_second
    )
    if not held_back and room > 0:
        # The everyday case: one statement takes whatever is due, tests included, and
        # some more to have ready for the next answers (no claim per answer).
        taken, stale = lane.take_ready(room, now=now)
        exhausted = False
        try:
            if stale:
                lifecycle.release(stale, token=token, now=now)
            if len(taken) < room:
                want = room - len(taken)
                asked = want + min(READY_AHEAD, endpoint.max_in_flight)
                got = claim("any", asked)
                taken += got[:want]
                lane.ready.extend(got[want:])
                exhausted = len(got) < asked
        except BaseException:
            lane.ready.extendleft(reversed(taken))  # still ours: given back at the end
            raise
        taken = _took(lane, [], taken)
        # Fewer than asked for: nothing more is due now, so the lane waits like a dry
        # one (until new work is heard of, or the dry pause) instead of a second claim.
        lane.dry = lane.dry or exhausted
        return taken
    if not held_back and time.monotonic() - lane.tests_asked_at < TEST_POLL_SECONDS:
        lane.dry = True  # full, and asked for tests a moment ago: until an answer frees room
        return []
    lane.tests_asked_at = time.monotonic()
    if held_back and lane.ready:
        # Held back since it was claimed (circuit, switch, a limit support just set):
        # what was claimed ahead goes back to waiting, due now, no attempt counted.
        lifecycle.release(lane.give_back(), token=token, now=now)
    # Something holds the endpoint's deliveries back. A test event is someone
    # checking the endpoint right now: it goes past the switch, the circuit, the cap
    # and the rate limit (SPEC §4, "Test event"), not counted toward the cap.
    tests = claim("tests", TEST_BATCH)
    if not endpoint.enabled or endpoint.awaiting_verification:
        return _took(lane, tests, [])  # its verification challenge is a test
    if state.circuit_state != CircuitState.CLOSED:
        if (
            lane.probing
            or room <= 0
            or not health.probe_start(lane.pk, until=now + lane.lease(), now=now)
        ):
            return _took(lane, tests, [])
        # Probe: one delivery goes; the circuit is half-open until its result is in.
        state.circuit_state = CircuitState.HALF_OPEN
        if endpoint.ordered:
            probe = _ordered_next(lane, claim, now=now)
        else:
            oldest = lifecycle.oldest_due(lane.pk, now=now)
            probe = claim("pk", 1, oldest) if oldest else []
        lane.probing = bool(probe)
        return _took(lane, tests, probe)
    if room > 0 and endpoint.rate_limit_per_second:
        room = _rate_room(lane, room, now=now)
    taken = []
    if room > 0:
        if endpoint.ordered:
            taken = claim("unordered", room)
            if len(taken) < room:
                taken += _ordered_next(lane, claim, now=now)
        else:
            taken = claim("others", room)
    return _took(lane, tests, taken)


def _took(lane: Lane, uncounted: list[Delivery], counted: list[Delivery]) -> list:
    for delivery in uncounted:
        delivery.counted = False
    for delivery in counted:
        delivery.counted = True
    lane.mine += len(counted)
    waiting_for_token = lane.rate_wait_until > time.monotonic()
    lane.dry = not (uncounted or counted) and not waiting_for_token
    return uncounted + counted


def _rate_room(lane: Lane, room: int, *, now: datetime) -> int:
    if lane.rate_wait_until > time.monotonic():
        return 0
    due = (
        Delivery.objects.filter(due_q(now), endpoint_id=lane.pk)
        .exclude(next_trigger=Trigger.TEST)
        .values_list("pk", flat=True)[:room]
    )
    wanted = len(due)
    if not wanted:
        return 0
    waits = ratelimit.take(lane.endpoint, wanted, now=now, health=lane.health)
    granted = sum(1 for w in waits if w <= 0)
    if granted < wanted:
        lane.rate_wait_until = time.monotonic() + min(w for w in waits if w > 0)
    return granted


def _claimer(lane: Lane, *, token: str, now: datetime):
    def claim(which: str, limit: int, pk: int | None = None) -> list[Delivery]:
        return lifecycle.claim(
            lane.pk, limit=limit, token=token, lease=lane.lease(), now=now, which=which, pk=pk
        )

    return claim


def _ordered_next(lane: Lane, claim, *, now: datetime) -> list[Delivery]:
    """An ordered endpoint: its queue's head, only when nothing of the queue is in
    flight; the rest of the queue is held until the head is done."""
    head = lifecycle.ordered_head(lane.pk)
    if head is None:
        return []
    lifecycle.hold_ordered(lane.pk, head_pk=head["pk"], now=now)
    # Not only the head: a delivery that committed after a younger one (created_at is
    # taken before the commit) may be in flight while an older one is now the head.
    if head["status"] == DeliveryStatus.IN_FLIGHT or lifecycle.ordered_in_flight(lane.pk):
        return []
    if head["next_attempt_at"] is None:
        lifecycle.release_ordered([lane.pk], now=now)
    return claim("pk", 1, head["pk"])


def load_lanes(endpoint_ids: Sequence[int], *, token: str, now: datetime) -> dict[int, Lane]:
    # One Endpoint object (one decryption of its secrets) per endpoint, not per row.
    endpoints = Endpoint.objects.in_bulk(list(endpoint_ids))
    states = EndpointHealth.objects.in_bulk(list(endpoint_ids))
    lanes = {}
    for pk in endpoint_ids:
        if pk in endpoints and pk in states:
            lane = Lane(endpoints[pk], states[pk])
            lane.others = lifecycle.in_flight_count(pk, now=now, exclude_token=token)
            lanes[pk] = lane
    return lanes
