"""A running drain hears of new deliveries (PostgreSQL LISTEN/NOTIFY), claims ahead for
the next answers and writes successes together — against a real receiver and database."""

import threading

import pytest
from django.db import connection, connections, transaction

from deliveries import engine, wakeups
from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus
from events.services import publish
from tests.factories import make_endpoint
from tests.receiver import Response

pytestmark = pytest.mark.django_db(transaction=True)

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's"
)


def _publish_elsewhere(n: int = 1, *, roll_back: bool = False) -> None:
    """Publish from another connection (another process would do the same)."""

    def run():
        try:
            for i in range(n):
                try:
                    with transaction.atomic():
                        publish("order.paid", {"n": i})
                        if roll_back:
                            raise RuntimeError("rolled back")
                except RuntimeError:
                    pass
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


@postgresql_only
def test_a_listening_drain_hears_the_endpoint_of_a_committed_delivery_only(event_types):
    endpoint = make_endpoint(url="https://hooks.example.com/a")
    other = make_endpoint(url="https://hooks.example.com/b", event_types=["shipment.moved"])
    assert wakeups.listen()
    try:
        _publish_elsewhere(roll_back=True)
        assert wakeups.heard(timeout=0.5) == set()  # rolled back: nothing is said
        _publish_elsewhere()
        assert wakeups.heard(timeout=5) == {endpoint.pk}
        assert other.pk not in wakeups.heard(timeout=0)
    finally:
        wakeups.unlisten()
    _publish_elsewhere()
    assert wakeups.heard(timeout=0.3) == set()  # not listening any more


def test_listen_is_refused_where_it_cannot_work(event_types):
    if connection.vendor == "postgresql":
        with transaction.atomic():  # inside a transaction LISTEN waits for its commit
            assert not wakeups.listen()
    else:
        assert not wakeups.listen()


def test_claimed_ahead_deliveries_respect_the_cap_and_all_are_recorded(event_types, receiver):
    """30 due deliveries, cap 3, a slow receiver: never more than 3 requests at once,
    every delivery sent once and recorded once (successes written together)."""
    receiver.respond_with(lambda request: Response(status=200, delay=0.05))
    endpoint = make_endpoint(url=receiver.url_for("/hook"), max_in_flight=3)
    for i in range(30):
        publish("order.paid", {"n": i})
    outcomes = engine.drain([endpoint.pk], linger=0)
    requests = receiver.wait_for(30, timeout=10)
    assert len(outcomes) == 30
    assert receiver.max_concurrency <= 3
    assert len({r.headers["webhook-id"] for r in requests}) == 30
    assert Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 30
    assert DeliveryAttempt.objects.count() == 30
    # Nothing is left claimed: what was claimed ahead was sent or given back.
    assert not Delivery.objects.exclude(lease_token="").exists()


def test_claimed_ahead_deliveries_go_back_when_the_circuit_opens(event_types, receiver):
    """A failing endpoint: what was claimed ahead is given back (waiting, no attempt
    counted) when the circuit opens — not sent to the failing endpoint."""
    receiver.respond_with(lambda request: Response(status=503, delay=0.02))
    endpoint = make_endpoint(url=receiver.url_for("/hook"), max_in_flight=2)
    for i in range(40):
        publish("order.paid", {"n": i})
    engine.drain([endpoint.pk], linger=0)
    attempted = DeliveryAttempt.objects.count()
    assert 0 < attempted < 40  # the circuit stopped it
    assert not Delivery.objects.exclude(lease_token="").exists()
    untouched = Delivery.objects.filter(attempt_count=0)
    # One attempt row per delivery tried; the rest (claimed ahead, given back) counted none.
    assert untouched.count() == 40 - attempted
    assert not untouched.exclude(status=DeliveryStatus.PENDING).exists()
