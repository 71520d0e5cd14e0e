"""The delivery engine against a real receiver and a real database (no qcluster)."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection, connections
from django.utils import timezone
from django_q.models import OrmQ
from standardwebhooks.webhooks import Webhook

from deliveries import dispatch, engine, health, lifecycle
from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus, Trigger
from endpoints.services import endpoint_disable
from events.models import EventType
from events.services import publish
from tests.factories import make_endpoint
from tests.queue import take
from tests.receiver import Response

pytestmark = pytest.mark.django_db(transaction=True)


def deliver_all(event):
    ids = list(event.deliveries.values_list("pk", flat=True))
    return engine.deliver(ids)


def test_published_event_arrives_signed_and_is_recorded(event_types, receiver):
    endpoint = make_endpoint(
        url=receiver.url_for("/hook"),
        auth_token="tok_abcdefgh12345678",
        headers={"X-Partner": "acme"},
    )
    event = publish("order.paid", {"order": {"id": 1, "amount": 4999}})
    deliver_all(event)
    (request,) = receiver.wait_for(1)
    assert request.body == event.body.encode()
    Webhook(endpoint.signing_secret).verify(request.body, dict(request.headers))
    assert request.headers["webhook-id"] == event.public_id
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == "Bearer tok_abcdefgh12345678"
    assert request.headers["x-partner"] == "acme"
    assert request.headers["user-agent"].startswith("webhookhub/")

    delivery = Delivery.objects.get(event=event)
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempt_count == 1
    assert delivery.last_status_code == 200 and delivery.completed_at is not None
    assert delivery.lease_token == "" and delivery.next_attempt_at is None
    attempt = delivery.attempts.get()
    assert attempt.number == 1 and attempt.trigger == Trigger.AUTO and attempt.succeeded
    assert attempt.response_status_code == 200 and attempt.response_body == "ok"
    assert attempt.request_headers["Authorization"] == "••••5678"
    assert "tok_abcdefgh" not in str(attempt.request_headers)
    assert endpoint.signing_secret[6:12] not in str(attempt.request_headers)
    assert attempt.request_body == event.body


def test_failure_schedules_retry_per_policy_and_same_bytes_go_out_each_time(event_types, receiver):
    endpoint = make_endpoint(url=receiver.url_for(), retry_policy={"jitter": 0})
    receiver.script(Response(500, b"boom"), Response(500, b"boom again"), Response(200))
    event = publish("order.paid", {"n": 1})
    start = timezone.now()
    with time_machine.travel(start, tick=True) as clock:
        deliver_all(event)
        delivery = Delivery.objects.get(event=event)
        assert delivery.status == DeliveryStatus.RETRYING and delivery.attempt_count == 1
        assert delivery.last_status_code == 500
        assert timedelta(seconds=4) < delivery.next_attempt_at - start < timedelta(seconds=6)
        assert engine.deliver([delivery.pk]) == [], "not due yet: nothing is sent"

        clock.shift(timedelta(seconds=6))
        deliver_all(event)
        delivery.refresh_from_db()
        assert delivery.attempt_count == 2
        assert (
            timedelta(seconds=290)
            < delivery.next_attempt_at - timezone.now()
            < timedelta(seconds=310)
        )

        clock.shift(timedelta(seconds=301))
        deliver_all(event)
        first, second, third = receiver.wait_for(3)
        Webhook(endpoint.signing_secret).verify(third.body, dict(third.headers))
    assert first.body == second.body == third.body == event.body.encode()
    assert len({r.headers["webhook-id"] for r in (first, second, third)}) == 1
    assert len({r.headers["webhook-timestamp"] for r in (first, second, third)}) == 3
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempt_count == 3
    attempts = list(delivery.attempts.order_by("number"))
    assert [a.number for a in attempts] == [1, 2, 3]
    assert [a.trigger for a in attempts] == [Trigger.AUTO, Trigger.RETRY, Trigger.RETRY]
    assert attempts[0].response_body == "boom" and attempts[0].error_kind == "http_status"


def test_exhausted_attempts_make_the_delivery_dead(event_types, receiver):
    make_endpoint(url=receiver.url_for(), retry_policy={"max_attempts": 2, "jitter": 0})
    receiver.default = Response(503)
    event = publish("order.paid", {})
    with time_machine.travel(timezone.now(), tick=True) as clock:
        deliver_all(event)
        clock.shift(timedelta(seconds=10))
        deliver_all(event)
    delivery = Delivery.objects.get(event=event)
    assert delivery.status == DeliveryStatus.DEAD and delivery.attempt_count == 2
    assert delivery.next_attempt_at is None and "503" in delivery.last_error


def test_unreachable_endpoint_records_the_error(event_types):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    make_endpoint(url=f"http://127.0.0.1:{port}/hook")
    event = publish("order.paid", {})
    deliver_all(event)
    attempt = DeliveryAttempt.objects.get(delivery__event=event)
    assert attempt.error_kind == "connection" and attempt.response_status_code is None
    assert Delivery.objects.get(event=event).status == DeliveryStatus.RETRYING


def test_in_flight_delivery_is_not_claimed_twice_until_its_lease_expires(event_types):
    make_endpoint(timeout_seconds=10)
    event = publish("order.paid", {})
    pk = event.deliveries.get().pk
    token, claimed = take([pk])
    assert [d.pk for d in claimed] == [pk]
    assert take([pk])[1] == []
    delivery = Delivery.objects.get(pk=pk)
    lease = delivery.claimed_until - timezone.now()
    assert timedelta(seconds=10) < lease <= engine.lease_for(10), "lease outlasts the timeout"
    with time_machine.travel(delivery.claimed_until + timedelta(seconds=1)):
        assert take([pk])[1] == [], "an expired lease is the dispatcher's to reclaim"
        lifecycle.reclaim_expired(now=timezone.now())
        again_token, again = take([pk])
    assert [d.pk for d in again] == [pk] and again_token != token


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent connections")
def test_two_threads_claiming_one_delivery_exactly_one_wins(event_types):
    make_endpoint()
    pk = publish("order.paid", {}).deliveries.get().pk
    barrier = threading.Barrier(8)
    wins = []

    def claim():
        try:
            barrier.wait(timeout=5)
            wins.append(len(take([pk])[1]))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(wins) == [0] * 7 + [1]


def test_dispatcher_wakes_endpoints_with_due_retries_lost_first_attempts_and_expired_leases(
    event_types, receiver
):
    for n in range(7):
        EventType.objects.get_or_create(name=f"order.n{n}")
    busy, lost_ep, retry_ep, _later, crashed_ep, _fresh, off_ep = (
        make_endpoint(name=f"e{n}", event_types=[f"order.n{n}"], url=receiver.url_for())
        for n in range(7)
    )
    now = timezone.now()
    made = {n: publish(f"order.n{n}", {}).deliveries.get() for n in range(7)}
    OrmQ.objects.all().delete()  # the broker lost every fast-path task
    old = now - timedelta(seconds=5)
    Delivery.objects.filter(pk__in=[made[0].pk, made[1].pk, made[6].pk]).update(next_attempt_at=old)
    Delivery.objects.filter(pk=made[2].pk).update(
        status="retrying", next_attempt_at=now - timedelta(seconds=1), attempt_count=1
    )
    Delivery.objects.filter(pk=made[3].pk).update(
        status="retrying", next_attempt_at=now + timedelta(minutes=5)
    )
    take([made[4].pk])  # a worker took it … and died
    Delivery.objects.filter(pk=made[4].pk).update(claimed_until=now - timedelta(seconds=1))
    assert health.drain_acquire(busy.pk, "someone", ttl=timedelta(seconds=30), now=now)
    endpoint_disable(off_ep, by="support")
    OrmQ.objects.all().delete()

    dispatcher = dispatch.Dispatcher()
    assert dispatcher.tick(now=now) == 3
    queued = sorted(pk for row in OrmQ.objects.all() for pk in row.task["args"][0])
    # Lost first attempt, due retry, expired lease; not: the endpoint someone drains,
    # the retry due later, the fresh row (its fast path is not late), the one switched off.
    assert queued == sorted([lost_ep.pk, retry_ep.pk, crashed_ep.pk])
    assert Delivery.objects.get(pk=made[4].pk).status == DeliveryStatus.PENDING, "reclaimed"
    assert dispatcher.tick(now=now) == 0, "an endpoint whose drain is still queued: not again"
    engine.drain([lost_ep.pk, retry_ep.pk, crashed_ep.pk], linger=0)
    assert dispatcher.tick(now=timezone.now()) == 0, "nothing left"
    statuses = dict(Delivery.objects.values_list("pk", "status"))
    assert statuses[made[1].pk] == statuses[made[2].pk] == statuses[made[4].pk] == "succeeded"
    assert statuses[made[0].pk] == statuses[made[5].pk] == statuses[made[6].pk] == "pending"
    assert statuses[made[3].pk] == "retrying"


def test_dispatcher_lease_lets_one_loop_run_at_a_time(db):
    assert dispatch.lease_acquire("dispatcher", "a", ttl=timedelta(seconds=10))
    assert not dispatch.lease_acquire("dispatcher", "b", ttl=timedelta(seconds=10))
    assert dispatch.lease_acquire("dispatcher", "a", ttl=timedelta(seconds=10)), "renewal"
    with time_machine.travel(timezone.now() + timedelta(seconds=11)):
        assert dispatch.lease_acquire("dispatcher", "b", ttl=timedelta(seconds=10)), "takeover"
    assert dispatch.dispatch_loop(seconds=0.1, chain=False) == 0
