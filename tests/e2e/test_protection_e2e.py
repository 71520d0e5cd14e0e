"""End to end with real qcluster processes: circuit breaker, 410, rate limit and
concurrency cap across two clusters, FIFO ordering, rotation."""

import itertools
import threading
from datetime import timedelta

import pytest
from django.db import transaction
from standardwebhooks.webhooks import Webhook

from deliveries.models import CircuitState, Delivery, DeliveryStatus, EndpointHealth
from endpoints.models import Endpoint
from endpoints.services import endpoint_rotate_secret
from events.services import publish
from tests.e2e.conftest import wait_until
from tests.factories import make_endpoint
from tests.receiver import Response

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("e2e"),
]
FAST_RETRY = {"strategy": "fixed", "base_delay": 1, "jitter": 0, "max_attempts": 50}


def succeeded(**filters) -> int:
    return Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED, **filters).count()


def test_circuit_opens_probes_closes_and_delivers_the_backlog(event_types, receiver, start_cluster):
    endpoint = make_endpoint(url=receiver.url_for(), retry_policy=FAST_RETRY)
    failing = {"on": True}
    receiver.respond_with(lambda r: Response(500) if failing["on"] else Response(200))
    start_cluster(extra_env={"WEBHOOKHUB_CIRCUIT_COOLDOWN_SECONDS": "3"})
    with transaction.atomic():
        for n in range(5):
            publish("order.paid", {"n": n})
    wait_until(
        lambda: EndpointHealth.objects.filter(
            pk=endpoint.pk, circuit_state=CircuitState.OPEN
        ).exists(),
        timeout=30,
        message="circuit open after 5 failures",
    )
    opened_requests = len(receiver.requests)
    assert opened_requests >= 5
    with transaction.atomic():
        backlog = [publish("order.paid", {"backlog": n}) for n in range(10)]
    # The probe after the cooldown fails: still open, the backlog is untouched.
    wait_until(lambda: len(receiver.requests) > opened_requests, timeout=30, message="a probe")
    probe = receiver.requests[opened_requests]
    assert probe.status == 500
    assert len(receiver.requests) == opened_requests + 1, "exactly one probe"
    assert not Delivery.objects.filter(event__in=backlog, attempt_count__gt=0).exists()
    failing["on"] = False
    wait_until(
        lambda: succeeded(endpoint=endpoint) == 15,
        timeout=60,
        message="circuit closed and everything delivered",
    )
    endpoint.refresh_from_db()
    health = EndpointHealth.objects.get(pk=endpoint.pk)
    assert health.circuit_state == CircuitState.CLOSED and health.failing_since is None


def test_410_disables_the_endpoint(event_types, receiver, start_cluster):
    endpoint = make_endpoint(url=receiver.url_for())
    receiver.default = Response(410, b"gone")
    start_cluster()
    publish("order.paid", {})
    wait_until(
        lambda: not Endpoint.objects.get(pk=endpoint.pk).enabled, timeout=30, message="disabled"
    )
    assert Endpoint.objects.get(pk=endpoint.pk).disabled_reason == "receiver answered 410"


def test_rate_limit_holds_across_two_clusters(event_types, receiver, start_cluster):
    make_endpoint(url=receiver.url_for(), rate_limit_per_second=20, max_in_flight=100)
    start_cluster()
    start_cluster()
    with transaction.atomic():
        for n in range(200):
            publish("order.paid", {"n": n})
    wait_until(lambda: succeeded() == 200, timeout=90, message="all 200 delivered")
    times = sorted(r.started_at for r in receiver.requests)
    assert len(times) == 200
    assert times[-1] - times[0] >= 9.0, "200 at 20/s (burst of 10) take at least 9.5 s"
    # Never early: in any window of w seconds at most 10 (burst) + 20 * w requests. The
    # bucket is charged when a worker claims a batch; the requests of a batch start a
    # little later (up to ~0.25 s on a loaded machine), hence the slack on w.
    for i, j in itertools.combinations(range(200), 2):
        window = times[j] - times[i] + 0.25
        assert j - i + 1 <= 10 + 20 * window + 1, (i, j, window)


def test_concurrency_cap_holds_across_two_clusters(event_types, receiver, start_cluster):
    make_endpoint(url=receiver.url_for(), max_in_flight=3)
    receiver.default = Response(200, delay=0.2)
    start_cluster()
    start_cluster()
    with transaction.atomic():
        for n in range(30):
            publish("order.paid", {"n": n})
    wait_until(lambda: succeeded() == 30, timeout=90, message="all 30 delivered")
    assert receiver.max_concurrency <= 3


def test_ordered_endpoint_receives_100_events_in_order_despite_failures(
    event_types, receiver, start_cluster
):
    make_endpoint(url=receiver.url_for(), ordered=True, retry_policy=FAST_RETRY)
    failures = {"left": 2}
    lock = threading.Lock()

    def respond(request):
        with lock:
            if request.json()["data"]["n"] == 9 and failures["left"]:
                failures["left"] -= 1
                return Response(500)
        return Response(200)

    receiver.respond_with(respond)
    start_cluster()
    with transaction.atomic():
        for n in range(100):
            publish("order.paid", {"n": n})
    wait_until(lambda: succeeded() == 100, timeout=120, message="all 100 delivered")
    received = [r.json()["data"]["n"] for r in receiver.requests]
    assert received == [*range(9), 9, 9, 9, *range(10, 100)]
    assert receiver.max_concurrency == 1


def test_rotation_under_a_running_cluster(event_types, receiver, start_cluster):
    endpoint = make_endpoint(url=receiver.url_for())
    old = endpoint.signing_secret
    new = endpoint_rotate_secret(endpoint, by="admin:sam", grace=timedelta(hours=1))
    start_cluster()
    publish("order.paid", {})
    (request,) = receiver.wait_for(1, timeout=30)
    Webhook(old).verify(request.body, dict(request.headers))
    Webhook(new).verify(request.body, dict(request.headers))
