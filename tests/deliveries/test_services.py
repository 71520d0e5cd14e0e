"""Support actions shared by the admin, API and commands: retry, replay, recover,
cancel, test — against a real receiver."""

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_q.models import OrmQ
from standardwebhooks.webhooks import Webhook

from deliveries import engine
from deliveries.models import Delivery, DeliveryStatus, Trigger
from deliveries.services import (
    deliveries_cancel,
    delivery_cancel,
    delivery_retry_now,
    endpoint_recover,
    endpoint_send_test,
    event_replay,
)
from events.services import publish
from tests.factories import PartnerFactory, make_endpoint
from tests.queue import run_queue
from tests.receiver import Response

pytestmark = pytest.mark.django_db(transaction=True)


def dead_delivery(endpoint, receiver):
    receiver.script(Response(500, b"nope"))
    event = publish("order.paid", {"order": 1})
    run_queue()
    delivery = Delivery.objects.get(event=event, endpoint=endpoint)
    assert delivery.status == DeliveryStatus.DEAD
    return delivery


def test_retry_now_sends_a_dead_delivery_again_with_same_id_and_who_asked(event_types, receiver):
    endpoint = make_endpoint(url=receiver.url_for(), retry_policy={"max_attempts": 1})
    delivery = dead_delivery(endpoint, receiver)
    assert delivery_retry_now(delivery, by="admin:sam")
    assert run_queue() == 1
    first, second = receiver.wait_for(2)
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    assert second.body == first.body
    Webhook(endpoint.signing_secret).verify(second.body, dict(second.headers))
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempt_count == 2
    last = delivery.attempts.get(number=2)
    assert (last.trigger, last.triggered_by) == (Trigger.MANUAL, "admin:sam")


def test_retry_now_refuses_succeeded_and_in_flight(event_types, receiver):
    make_endpoint(url=receiver.url_for())
    event = publish("order.paid", {})
    run_queue()
    delivery = event.deliveries.get()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery_retry_now(delivery, by="x") is False
    other = publish("order.paid", {}).deliveries.get()
    engine.deliveries_claim([other.pk])
    assert delivery_retry_now(other, by="x") is False
    assert Delivery.objects.get(pk=other.pk).status == DeliveryStatus.IN_FLIGHT


def test_event_replay_to_all_or_one_endpoint(event_types, receiver):
    partner = PartnerFactory()
    a = make_endpoint(partner, name="a", url=receiver.url_for("/a"))
    b = make_endpoint(partner, name="b", url=receiver.url_for("/b"))
    event = publish("order.paid", {"n": 1}, partner=partner)
    run_queue()
    receiver.wait_for(2)
    assert event_replay(event, by="api:whk_1234") == 2
    run_queue()
    requests = receiver.wait_for(4)
    assert sorted(r.path for r in requests[2:]) == ["/a", "/b"]
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert event_replay(event, endpoint=b, by="api:whk_1234") == 1
    run_queue()
    assert receiver.wait_for(5)[-1].path == "/b"
    attempts = Delivery.objects.get(event=event, endpoint=b).attempts.order_by("number")
    assert [a.trigger for a in attempts] == [Trigger.AUTO, Trigger.REPLAY, Trigger.REPLAY]
    assert Delivery.objects.get(event=event, endpoint=a).attempt_count == 2


def test_replay_reaches_an_endpoint_subscribed_after_the_event(event_types, receiver):
    partner = PartnerFactory()
    event = publish("order.paid", {}, partner=partner)
    assert event.deliveries.count() == 0
    late = make_endpoint(partner, url=receiver.url_for("/late"))
    assert event_replay(event, by="x") == 1
    run_queue()
    assert receiver.wait_for(1)[0].headers["webhook-id"] == event.public_id
    assert Delivery.objects.get(event=event, endpoint=late).status == DeliveryStatus.SUCCEEDED


def test_replay_to_another_partners_endpoint_is_refused(event_types):
    event = publish("order.paid", {}, partner=PartnerFactory(name="A"))
    stranger = make_endpoint(PartnerFactory(name="B"))
    with pytest.raises(ValidationError, match="does not belong"):
        event_replay(event, endpoint=stranger, by="x")
    assert not Delivery.objects.filter(endpoint=stranger).exists()


def test_recover_resends_what_failed_since_a_time(event_types, receiver):
    endpoint = make_endpoint(url=receiver.url_for(), retry_policy={"max_attempts": 1})
    receiver.default = Response(503)
    start = timezone.now()
    with time_machine.travel(start - timedelta(hours=2)):
        old = publish("order.paid", {"old": True})
        run_queue()
    recent = [publish("order.paid", {"n": n}) for n in range(3)]
    run_queue()
    ok = publish("order.paid", {"fine": True})
    Delivery.objects.filter(event=ok).update(status=DeliveryStatus.SUCCEEDED)
    receiver.default = Response(200)
    assert endpoint_recover(endpoint, since=start - timedelta(hours=1), by="cron") == 3
    run_queue()
    assert set(
        Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).values_list("event_id", flat=True)
    ) == {e.pk for e in recent} | {ok.pk}
    assert Delivery.objects.get(event=old).status == DeliveryStatus.DEAD
    with pytest.raises(ValidationError, match="future"):
        endpoint_recover(endpoint, since=timezone.now() + timedelta(hours=1), by="cron")


def test_cancel_stops_waiting_deliveries_only(event_types, receiver):
    endpoint = make_endpoint(url=receiver.url_for())
    waiting = publish("order.paid", {}).deliveries.get()
    assert delivery_cancel(waiting, by="admin:sam")
    assert run_queue() == 1 and receiver.requests == []
    waiting.refresh_from_db()
    assert waiting.status == DeliveryStatus.CANCELLED and "admin:sam" in waiting.last_error
    publish("order.paid", {})  # succeeds: nothing left to cancel
    run_queue()
    assert deliveries_cancel(Delivery.objects.filter(endpoint=endpoint), by="x") == 0


def test_send_test_returns_the_attempt_at_once(event_types, receiver):
    endpoint = make_endpoint(url=receiver.url_for("/t"), event_types=["order.paid"])
    receiver.script(Response(201, b'{"ok": true}'))
    attempt = endpoint_send_test(endpoint, by="admin:sam")
    assert attempt.succeeded and attempt.response_status_code == 201
    assert attempt.response_body == '{"ok": true}' and attempt.trigger == Trigger.TEST
    (request,) = receiver.requests
    assert request.json()["type"] == "webhookhub.test"
    Webhook(endpoint.signing_secret).verify(request.body, dict(request.headers))
    assert OrmQ.objects.count() == 0, "a test is sent synchronously, not queued"


def test_failed_test_event_is_not_retried(event_types, receiver):
    endpoint = make_endpoint(url=receiver.url_for())
    receiver.script(Response(500, b"broken"))
    attempt = endpoint_send_test(endpoint, by="admin:sam")
    assert not attempt.succeeded and attempt.response_body == "broken"
    assert attempt.delivery.status == DeliveryStatus.DEAD
    assert attempt.delivery.next_attempt_at is None
