"""Support actions shared by the admin, API and commands: retry, replay, recover,
cancel, test — against a real receiver."""

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_q.models import OrmQ
from standardwebhooks.webhooks import Webhook

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
from tests.queue import run_queue, take
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
    take([other.pk])
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


def test_queued_test_is_sent_by_a_worker_not_by_the_caller(event_types, receiver):
    from deliveries.selectors import delivery_test_attempt
    from deliveries.services import endpoint_test_queue

    endpoint = make_endpoint(url=receiver.url_for("/t"))
    delivery = endpoint_test_queue(endpoint, by="api:partner")
    assert not receiver.requests and delivery_test_attempt(delivery) is None
    assert OrmQ.objects.count() == 1, "handed to the workers on commit"
    assert run_queue() == 1
    (request,) = receiver.requests
    Webhook(endpoint.signing_secret).verify(request.body, dict(request.headers))
    attempt = delivery_test_attempt(delivery)
    assert attempt.succeeded and (attempt.trigger, attempt.triggered_by) == ("test", "api:partner")


def test_test_events_are_not_gated_by_the_rate_limit(event_types, receiver):
    """F2: rate limit 1/s, four quick tests: four requests and four results (was a 500 on
    the second: the limiter deferred the test and no attempt existed)."""
    from deliveries.selectors import delivery_test_attempt
    from deliveries.services import endpoint_test_queue

    endpoint = make_endpoint(url=receiver.url_for(), rate_limit_per_second=1)
    attempts = [endpoint_send_test(endpoint, by="admin:sam") for _ in range(2)]
    queued = [endpoint_test_queue(endpoint, by="api:p") for _ in range(2)]
    assert run_queue() == 2
    attempts += [delivery_test_attempt(delivery) for delivery in queued]
    assert all(a is not None and a.succeeded for a in attempts)
    assert len(receiver.requests) == 4


def test_a_test_whose_worker_died_mid_request_is_dead_and_never_sent_again(event_types, receiver):
    from deliveries.dispatch import dispatch_due
    from deliveries.lifecycle import LOST_TEST_ERROR
    from deliveries.services import endpoint_test_queue

    endpoint = make_endpoint(url=receiver.url_for())
    delivery = endpoint_test_queue(endpoint, by="admin:sam")
    OrmQ.objects.all().delete()
    _, claimed = take([delivery.pk])  # a worker takes it … and is SIGKILLed
    assert [d.pk for d in claimed] == [delivery.pk]
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        assert take([delivery.pk])[1] == [], "nobody may take it again"
        assert dispatch_due() == 0
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DEAD and delivery.last_error == LOST_TEST_ERROR
    assert run_queue() == 0 and not receiver.requests


def test_test_send_racing_a_delete_is_not_found(event_types, receiver):
    """F10: the endpoint deleted between the caller's lookup and the send."""
    from deliveries.services import endpoint_test_queue
    from endpoints.models import Endpoint
    from endpoints.services import endpoint_delete

    endpoint = make_endpoint(url=receiver.url_for())
    stale = Endpoint.objects.get(pk=endpoint.pk)
    endpoint_delete(endpoint, by="api:p")
    with pytest.raises(Endpoint.DoesNotExist):
        endpoint_test_queue(stale, by="api:p")
    assert not Delivery.objects.exists() and OrmQ.objects.count() == 0
