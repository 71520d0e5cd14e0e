"""Endpoint protection against a real receiver and database, with a simulated clock:
circuit breaker, 410, auto-disable and notices, held deliveries, rate limit, ordering,
concurrency cap, secret rotation."""

import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from django_q.models import OrmQ
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from deliveries import dispatch, engine
from deliveries.health import failure_digest
from deliveries.models import CircuitState, Delivery, DeliveryStatus, EndpointHealth
from endpoints.models import Endpoint
from endpoints.services import endpoint_disable, endpoint_enable, endpoint_rotate_secret
from events.models import Event
from events.services import publish
from tests.factories import PartnerFactory, make_endpoint
from tests.queue import due_ids, run_queue, take
from tests.receiver import Response

pytestmark = pytest.mark.django_db(transaction=True)

FAST_RETRY = {"strategy": "fixed", "base_delay": 1, "jitter": 0, "max_attempts": 50}


def op_events(name):
    return Event.objects.filter(event_type__name=name)


def state(endpoint) -> EndpointHealth:
    return EndpointHealth.objects.get(pk=endpoint.pk)


@pytest.fixture
def clock():
    with time_machine.travel(timezone.now(), tick=True) as traveller:
        yield traveller


def test_circuit_opens_after_5_failures_probes_after_cooldown_and_closes(
    event_types, receiver, clock, settings
):
    settings.WEBHOOKHUB_CIRCUIT_COOLDOWN_SECONDS = 60
    endpoint = make_endpoint(url=receiver.url_for(), retry_policy=FAST_RETRY)
    watcher = make_endpoint(
        endpoint.partner, name="ops", url=receiver.url_for("/ops"), event_types=["webhookhub.*"]
    )
    receiver.respond_with(lambda r: Response(200) if r.path == "/ops" else Response(500))
    for n in range(5):
        engine.deliver([publish("order.paid", {"n": n}).deliveries.get(endpoint=endpoint).pk])
    endpoint.refresh_from_db()
    assert (
        state(endpoint).circuit_state == CircuitState.OPEN
        and state(endpoint).consecutive_failures == 5
    )
    probe_at = state(endpoint).circuit_retry_at
    assert timedelta(seconds=59) < probe_at - timezone.now() <= timedelta(seconds=60)

    # While open, due deliveries wait without being attempted or burning attempts.
    clock.shift(timedelta(seconds=2))
    backlog = [publish("order.paid", {"b": n}).deliveries.get(endpoint=endpoint) for n in range(3)]
    sent_before = len(receiver.requests)
    assert engine.deliver(due_ids(endpoint)) == []
    assert len(receiver.requests) == sent_before
    for delivery in Delivery.objects.filter(pk__in=[d.pk for d in backlog]):
        assert delivery.attempt_count == 0 and delivery.status == DeliveryStatus.PENDING

    # After the cooldown exactly one probe goes; it fails: open again, cooldown doubles.
    clock.move_to(probe_at + timedelta(seconds=1))
    outcomes = engine.deliver(due_ids(endpoint))
    assert len(outcomes) == 1
    endpoint.refresh_from_db()
    assert state(endpoint).circuit_state == CircuitState.OPEN
    assert (
        timedelta(seconds=119)
        < state(endpoint).circuit_retry_at - timezone.now()
        <= timedelta(seconds=120)
    )

    # The next probe succeeds: closed, and the backlog goes at once, in the same drain
    # (the probe alone first: the rest was claimed only after its answer).
    receiver.respond_with(lambda r: Response(200))
    clock.move_to(state(endpoint).circuit_retry_at + timedelta(seconds=1))
    outcomes = engine.deliver(due_ids(endpoint))
    assert len(outcomes) == 8
    probe_done = outcomes[0].started_at + timedelta(milliseconds=outcomes[0].result.duration_ms)
    assert all(o.started_at >= probe_done for o in outcomes[1:])
    assert (
        state(endpoint).circuit_state == CircuitState.CLOSED
        and state(endpoint).consecutive_failures == 0
    )
    assert state(endpoint).failing_since is None
    engine.deliver(due_ids(endpoint))
    assert Delivery.objects.filter(endpoint=endpoint, status="succeeded").count() >= 3
    assert op_events("webhookhub.endpoint.recovered").count() == 1
    recovered = op_events("webhookhub.endpoint.recovered").get()
    assert recovered.partner_id == endpoint.partner_id
    assert recovered.deliveries.get().endpoint_id == watcher.pk


def test_410_disables_at_once_and_tells_partner_staff_and_subscribers(
    event_types, receiver, settings
):
    settings.ADMINS = [("Staff", "staff@hub.example")]
    partner = PartnerFactory(contact_email="ops@partner.example")
    gone = make_endpoint(partner, url=receiver.url_for("/gone"))
    make_endpoint(partner, name="ops", url=receiver.url_for("/ops"), event_types=["webhookhub.*"])
    receiver.respond_with(lambda r: Response(410) if r.path == "/gone" else Response(200))
    event = publish("order.paid", {}, partner=partner)
    engine.deliver([event.deliveries.get(endpoint=gone).pk])
    gone.refresh_from_db()
    assert not gone.enabled and gone.disabled_reason == "receiver answered 410"
    assert gone.disabled_kind == Endpoint.DisabledBy.GONE and gone.disabled_by == "system"
    (notice,) = mail.outbox
    assert set(notice.to) == {"ops@partner.example", "staff@hub.example"}
    assert "410" in notice.body
    disabled_event = op_events("webhookhub.endpoint.disabled").get()
    assert disabled_event.payload["endpoint"] == gone.public_id


def test_five_days_of_failure_disables_with_one_mail_and_one_event(event_types, receiver, clock):
    partner = PartnerFactory(contact_email="ops@partner.example")
    endpoint = make_endpoint(partner, url=receiver.url_for(), retry_policy=FAST_RETRY)
    make_endpoint(partner, name="ops", url=receiver.url_for("/ops"), event_types=["webhookhub.*"])
    receiver.respond_with(lambda r: Response(200) if r.path == "/ops" else Response(503))
    start = timezone.now()
    publish("order.paid", {})
    for hour in range(0, 5 * 24 + 13, 6):  # attempts every 6 hours for five days and more
        clock.move_to(start + timedelta(hours=hour))
        engine.deliver(due_ids(endpoint))
        endpoint.refresh_from_db()
        if state(endpoint).circuit_retry_at and state(endpoint).circuit_retry_at > timezone.now():
            EndpointHealth.objects.filter(pk=endpoint.pk).update(circuit_retry_at=timezone.now())
        if not endpoint.enabled:
            break
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert endpoint.disabled_reason.startswith("auto: failing since ")
    assert endpoint.disabled_kind == Endpoint.DisabledBy.AUTO
    assert timezone.now() - start >= timedelta(days=5)
    # The warnings at 50, 75 and 90 % of the window (one each), then the switch-off.
    assert [m.subject.split(" is failing")[0] for m in mail.outbox[:3]] == [
        f"[webhookhub] Endpoint {endpoint.name}"
    ] * 3
    assert "was disabled" in mail.outbox[3].subject and len(mail.outbox) == 4
    assert op_events("webhookhub.endpoint.disabled").count() == 1
    assert op_events("webhookhub.endpoint.failing").count() == 3
    # Its waiting delivery is kept, not dead and not sent.
    assert Delivery.objects.get(endpoint=endpoint).status == DeliveryStatus.RETRYING


def test_disabled_endpoint_holds_deliveries_and_sends_them_when_enabled(event_types, receiver):
    endpoint = make_endpoint(url=receiver.url_for())
    waiting = publish("order.paid", {}).deliveries.get()
    endpoint_disable(endpoint, by="admin:sam", reason="partner maintenance")
    assert engine.deliver([waiting.pk]) == [] and receiver.requests == []
    waiting.refresh_from_db()
    assert waiting.status == DeliveryStatus.PENDING and waiting.attempt_count == 0
    assert dispatch.endpoints_to_wake(timezone.now() + timedelta(seconds=5)) == [], "not woken"
    OrmQ.objects.all().delete()
    later = publish("order.paid", {}).deliveries.get()  # published while off: held too
    assert later.status == DeliveryStatus.PENDING
    assert not OrmQ.objects.exists(), "publishing does not wake a switched-off endpoint"
    endpoint_enable(endpoint, by="admin:sam")
    assert [pk for row in OrmQ.objects.all() for pk in row.task["args"][0]] == [endpoint.pk]
    run_queue()
    ids = [r.headers["webhook-id"] for r in receiver.wait_for(2)]
    assert sorted(ids) == sorted([waiting.event.public_id, later.event.public_id])


def test_disable_can_cancel_waiting_deliveries(event_types):
    endpoint = make_endpoint()
    waiting = publish("order.paid", {}).deliveries.get()
    endpoint_disable(endpoint, by="admin:sam", reason="gone for good", cancel_waiting=True)
    waiting.refresh_from_db()
    assert waiting.status == DeliveryStatus.CANCELLED


def test_dead_delivery_publishes_an_operational_event(event_types, receiver):
    partner = PartnerFactory()
    endpoint = make_endpoint(partner, url=receiver.url_for("/x"), retry_policy={"max_attempts": 1})
    make_endpoint(
        partner, name="ops", url=receiver.url_for("/ops"), event_types=["webhookhub.delivery.dead"]
    )
    receiver.respond_with(lambda r: Response(200) if r.path == "/ops" else Response(500))
    event = publish("order.paid", {}, partner=partner)
    engine.deliver([event.deliveries.get(endpoint=endpoint).pk])
    dead = op_events("webhookhub.delivery.dead").get()
    assert (
        dead.payload["event"] == event.public_id and dead.payload["endpoint"] == endpoint.public_id
    )


def test_failure_digest_mails_each_failing_endpoint_at_most_once_a_day(event_types, settings):
    settings.ADMINS = [("Staff", "staff@hub.example")]
    endpoint = make_endpoint(PartnerFactory(contact_email="ops@partner.example"))
    EndpointHealth.objects.filter(pk=endpoint.pk).update(
        circuit_state=CircuitState.OPEN,
        failing_since=timezone.now() - timedelta(hours=3),
        consecutive_failures=9,
    )
    assert failure_digest() == 1
    assert sorted(m.to[0] for m in mail.outbox) == ["ops@partner.example", "staff@hub.example"]
    assert endpoint.public_id in mail.outbox[0].body
    assert failure_digest() == 0 and len(mail.outbox) == 2
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        assert failure_digest() == 1


def test_rate_limit_lets_half_a_second_through_then_spreads_the_rest_without_attempts(
    event_types, receiver
):
    from django.db import transaction

    endpoint = make_endpoint(url=receiver.url_for(), rate_limit_per_second=20, max_in_flight=100)
    with transaction.atomic():
        for n in range(100):
            publish("order.paid", {"n": n})
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        sent = engine.deliver(Delivery.objects.values_list("pk", flat=True))
    assert len(sent) == 10  # a burst of half a second's worth
    waiting = Delivery.objects.filter(endpoint=endpoint, status="pending")
    assert waiting.count() == 90 and not waiting.filter(attempt_count__gt=0).exists()
    # Half a second later only the tokens that accrued (10) are admitted.
    with time_machine.travel(start + timedelta(seconds=0.5), tick=False):
        assert len(engine.deliver(due_ids(endpoint))) == 10


def test_concurrency_cap_keeps_at_most_max_in_flight_requests_at_once(event_types, receiver):
    endpoint = make_endpoint(url=receiver.url_for(), max_in_flight=3)
    ids = [publish("order.paid", {"n": n}).deliveries.get().pk for n in range(8)]
    busy, peak, lock = [0], [0], threading.Lock()

    def slow(request):
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        time.sleep(0.2)
        with lock:
            busy[0] -= 1
        return Response(200)

    receiver.respond_with(slow)
    take(ids[:1])  # another worker has one of them in flight
    sent = engine.deliver(ids)
    assert len(sent) == 7 and peak[0] == 2, "3 at once, one of them elsewhere"
    assert Delivery.objects.filter(endpoint=endpoint, status="succeeded").count() == 7


def test_ordered_endpoint_sends_only_its_head(event_types, receiver):
    endpoint = make_endpoint(url=receiver.url_for(), ordered=True, retry_policy=FAST_RETRY)
    events = [publish("order.paid", {"n": n}) for n in range(3)]
    ids = [e.deliveries.get().pk for e in events]
    receiver.script(Response(500))
    assert len(engine.deliver(ids)) == 1  # only the head; it fails
    assert Delivery.objects.filter(pk__in=ids[1:], next_attempt_at__isnull=True).count() == 2
    with time_machine.travel(timezone.now() + timedelta(seconds=2)):
        engine.deliver(due_ids(endpoint))  # head retried and succeeds -> next released
        engine.deliver(due_ids(endpoint))
        engine.deliver(due_ids(endpoint))
    assert [r.json()["data"]["n"] for r in receiver.requests] == [0, 0, 1, 2]


def test_rotation_signs_with_both_secrets_during_grace_then_only_the_new(event_types, receiver):
    endpoint = make_endpoint(url=receiver.url_for())
    old = endpoint.signing_secret
    new = endpoint_rotate_secret(endpoint, by="admin:sam", grace=timedelta(hours=24))
    engine.deliver([publish("order.paid", {"n": 1}).deliveries.get().pk])
    request = receiver.wait_for(1)[0]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(request.body, dict(request.headers))
    Webhook(new).verify(request.body, dict(request.headers))
    with time_machine.travel(timezone.now() + timedelta(hours=25), tick=False):
        engine.deliver([publish("order.paid", {"n": 2}).deliveries.get().pk])
        later = receiver.wait_for(2)[1]
        assert len(later.headers["webhook-signature"].split(" ")) == 1
        Webhook(new).verify(later.body, dict(later.headers))
        with pytest.raises(WebhookVerificationError):
            Webhook(old).verify(later.body, dict(later.headers))


def test_test_event_reaches_a_disabled_endpoint_or_open_circuit(event_types, receiver):
    from deliveries.services import endpoint_send_test

    endpoint = make_endpoint(url=receiver.url_for())
    endpoint_disable(endpoint, by="admin:sam", reason="checking")
    EndpointHealth.objects.filter(pk=endpoint.pk).update(
        circuit_state=CircuitState.OPEN, circuit_retry_at=timezone.now() + timedelta(hours=1)
    )
    attempt = endpoint_send_test(endpoint, by="admin:sam")
    assert attempt.succeeded and len(receiver.requests) == 1


def test_rate_limit_bucket_in_redis_when_configured(event_types, settings):
    redis = pytest.importorskip("redis")
    url = "redis://127.0.0.1:6379/12"
    try:
        redis.Redis.from_url(url).flushdb()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    from deliveries import ratelimit

    settings.REDIS_URL = url
    ratelimit._redis_script.cache_clear()
    try:
        endpoint = make_endpoint(rate_limit_per_second=20)
        start = timezone.now()
        waits = ratelimit.take(endpoint, 30, now=start)
        assert waits[:10] == [0.0] * 10 and all(w > 0 for w in waits[10:])
        assert max(waits) == pytest.approx(1.0)
        # 0.26 s later by Redis's clock, which the bucket keeps time by (not `now`).
        redis.Redis.from_url(url).hincrbyfloat(f"webhookhub:rate:{endpoint.pk}", "ts", -0.26)
        later = ratelimit.take(endpoint, 30, now=start)
        assert later.count(0.0) == 5  # 0.26 s at 20/s: 5 whole tokens
        assert state(endpoint).rate_tokens is None, "the bucket lives in Redis, not the row"
    finally:
        ratelimit._redis_script.cache_clear()


def test_ordered_endpoint_waits_while_any_delivery_of_its_queue_is_in_flight(event_types, receiver):
    """The head is the oldest by created_at, which is taken before the commit: a younger
    delivery committed first may be in flight when the older one becomes the head."""
    endpoint = make_endpoint(url=receiver.url_for(), ordered=True)
    older = publish("order.paid", {"n": 0}).deliveries.get()
    younger = publish("order.paid", {"n": 1}).deliveries.get()
    take([younger.pk])  # committed first, a worker is sending it right now
    assert engine.deliver([older.pk]) == [] and receiver.requests == []
    Delivery.objects.filter(pk=younger.pk).update(status="succeeded", lease_token="")
    assert len(engine.deliver([older.pk])) == 1
    assert Delivery.objects.get(pk=older.pk).status == "succeeded"
    assert endpoint.ordered


def test_an_endpoint_no_longer_ordered_lets_its_held_queue_go(event_types, receiver):
    from endpoints.services import endpoint_update

    endpoint = make_endpoint(url=receiver.url_for(), ordered=True)
    receiver.script(Response(500))
    ids = [publish("order.paid", {"n": n}).deliveries.get().pk for n in range(3)]
    engine.deliver(ids)  # the head fails; the two behind it are held
    assert Delivery.objects.filter(pk__in=ids[1:], next_attempt_at__isnull=True).count() == 2
    endpoint_update(endpoint, by="admin:sam", ordered=False)
    assert not Delivery.objects.filter(pk__in=ids, next_attempt_at__isnull=True).exists()
    engine.deliver(ids)
    assert Delivery.objects.filter(pk__in=ids[1:], status="succeeded").count() == 2
