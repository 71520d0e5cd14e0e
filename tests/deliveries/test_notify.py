"""Warnings before auto-disable, the extension signals and the notifiers — against a real
receiver and database, with a simulated clock."""

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ
from rest_framework.test import APIClient

from deliveries import dispatch, engine, tasks
from deliveries.health import failure_warnings
from deliveries.models import CircuitState, Delivery, DeliveryStatus, EndpointHealth
from endpoints.services import api_token_create, endpoint_disable, endpoint_enable
from events.models import Event
from events.services import publish
from tests.factories import PartnerFactory, make_endpoint
from tests.queue import due_ids
from tests.receiver import Response
from webhookhub import notifiers, signals

pytestmark = pytest.mark.django_db(transaction=True)

FAST_RETRY = {"strategy": "fixed", "base_delay": 1, "jitter": 0, "max_attempts": 50}
WINDOW_HOURS = 10


def warnings_sent():
    return list(
        Event.objects.filter(event_type__name="webhookhub.endpoint.failing")
        .order_by("pk")
        .values_list("payload__stage", flat=True)
    )


def attempt_at(clock, endpoint, moment):
    """At `moment`, send what is due (the circuit's cooldown cut short: a probe goes)."""
    clock.move_to(moment)
    EndpointHealth.objects.filter(pk=endpoint.pk, circuit_retry_at__isnull=False).update(
        circuit_retry_at=timezone.now()
    )
    engine.deliver(due_ids(endpoint))


class Recorder:
    """Receives every signal; `got` lists (signal name, notification)."""

    def __init__(self):
        self.got = []
        self.receivers = []

    def __enter__(self):
        for name, signal in signals.SIGNALS.items():

            def receive(sender, notification, _name=name, **kwargs):
                assert sender is type(notification)
                self.got.append((_name, notification))

            signal.connect(receive, weak=False)
            self.receivers.append((signal, receive))
        return self

    def __exit__(self, *exc):
        for signal, receive in self.receivers:
            signal.disconnect(receive)

    def named(self, name):
        return [n for signal_name, n in self.got if signal_name == name]


@pytest.fixture
def clock():
    with time_machine.travel(timezone.now(), tick=True) as traveller:
        yield traveller


@pytest.fixture
def window(settings):
    settings.WEBHOOKHUB_AUTO_DISABLE_AFTER_HOURS = WINDOW_HOURS
    settings.ADMINS = [("Staff", "staff@hub.example")]


# --- warnings before disabling --------------------------------------------------------


def test_warnings_at_50_75_90_percent_each_once_then_reset_after_recovery(
    event_types, receiver, clock, window
):
    partner = PartnerFactory(contact_email="ops@partner.example")
    endpoint = make_endpoint(partner, url=receiver.url_for("/hook"), retry_policy=FAST_RETRY)
    watcher = make_endpoint(
        partner, name="ops", url=receiver.url_for("/ops"), event_types=["webhookhub.*"]
    )
    receiver.respond_with(
        lambda r: Response(200) if r.path == "/ops" else Response(503, body='{"error": "down"}')
    )
    publish("order.paid", {}, partner=partner)
    start = timezone.now()
    expected = {0: [], 4: [], 5.5: [50], 6: [50], 7: [50], 8: [50, 75], 8.5: [50, 75]}
    expected |= {9.5: [50, 75, 90], 9.8: [50, 75, 90]}
    for hours, stages in expected.items():
        attempt_at(clock, endpoint, start + timedelta(hours=hours))
        assert warnings_sent() == stages, f"at {hours} h"
    assert len(mail.outbox) == 3
    first = mail.outbox[0]
    assert set(first.to) == {"ops@partner.example", "staff@hub.example"}
    assert "is failing and will be disabled in about 4 hours" in first.subject
    assert "50 %" in first.body and endpoint.public_id in first.body
    assert 'HTTP 503: {"error": "down"}' in first.body, "the last error"
    assert "switch it on again" in first.body and "2xx" in first.body, "how to fix, re-enable"
    assert "in about 1 hours" in mail.outbox[2].subject or "about 1 hours" in mail.outbox[2].body
    event = Event.objects.get(event_type__name="webhookhub.endpoint.failing", payload__stage=75)
    assert event.partner_id == partner.pk
    assert event.deliveries.get().endpoint_id == watcher.pk
    assert event.payload["endpoint"] == endpoint.public_id
    assert event.payload["last_error"].startswith("HTTP 503")
    assert (
        event.payload["disable_at"]
        == (
            EndpointHealth.objects.get(pk=endpoint.pk).failing_since + timedelta(hours=WINDOW_HOURS)
        ).isoformat()
    )
    # Housekeeping finds nothing more to send either.
    assert failure_warnings() == 0

    # Recovery ends the streak: the stages start again with the next one.
    receiver.respond_with(lambda r: Response(200))
    attempt_at(clock, endpoint, start + timedelta(hours=9.9))
    health = EndpointHealth.objects.get(pk=endpoint.pk)
    assert health.failure_warning_stage == 0 and health.failing_since is None
    receiver.respond_with(lambda r: Response(200) if r.path == "/ops" else Response(500))
    again = timezone.now()
    publish("order.paid", {"again": True}, partner=partner)
    attempt_at(clock, endpoint, again + timedelta(seconds=2))
    attempt_at(clock, endpoint, again + timedelta(hours=5.1))
    assert warnings_sent() == [50, 75, 90, 50]
    assert len(mail.outbox) == 4


def test_housekeeping_warns_an_endpoint_no_attempt_reaches(
    event_types, receiver, clock, window, monkeypatch
):
    """An open circuit with a long cooldown: no attempt happens at 50 %, the warning
    still goes (hourly housekeeping, and each dispatcher loop)."""
    endpoint = make_endpoint(
        PartnerFactory(contact_email="ops@partner.example"),
        url=receiver.url_for(),
        retry_policy=FAST_RETRY,
    )
    receiver.respond_with(lambda r: Response(500))
    publish("order.paid", {})
    start = timezone.now()
    attempt_at(clock, endpoint, start)
    EndpointHealth.objects.filter(pk=endpoint.pk).update(
        circuit_state=CircuitState.OPEN, circuit_retry_at=start + timedelta(days=30)
    )
    sent = len(receiver.requests)
    clock.move_to(start + timedelta(hours=4.9))
    assert tasks.housekeeping()["warnings_sent"] == 0 and warnings_sent() == []
    clock.move_to(start + timedelta(hours=5.1))
    assert tasks.housekeeping()["warnings_sent"] == 1
    assert tasks.housekeeping()["warnings_sent"] == 0, "never twice"
    clock.move_to(start + timedelta(hours=7.6))
    monkeypatch.setattr(dispatch, "dispatch_loop", lambda: 0)  # its ticks are not the point
    tasks.dispatch_loop()  # each loop first sends the warnings due
    assert warnings_sent() == [50, 75] and len(receiver.requests) == sent, "no attempt"
    warned = [m for m in mail.outbox if "is failing and will be disabled" in m.subject]
    assert [m.to for m in warned] == [["ops@partner.example", "staff@hub.example"]] * 2
    assert "HTTP 500" in warned[1].body


def test_an_endpoint_switched_off_is_not_warned(event_types, clock, window):
    endpoint = make_endpoint()
    EndpointHealth.objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now() - timedelta(hours=6), consecutive_failures=9
    )
    endpoint_disable(endpoint, by="admin:sam", reason="maintenance")
    assert failure_warnings() == 0 and mail.outbox == []


# --- signals ----------------------------------------------------------------------------


def test_event_published_after_commit_and_not_on_rollback(event_types):
    partner = PartnerFactory()
    make_endpoint(partner)
    with Recorder() as seen:
        with transaction.atomic():
            event = publish("order.paid", {"n": 1}, partner=partner, source="shop")
            assert seen.named("event_published") == [], "not before the commit"
        (published,) = seen.named("event_published")
        assert published == signals.EventPublished(
            event_id=event.public_id,
            event_type="order.paid",
            partner_id=partner.public_id,
            source="shop",
            occurred_at=event.occurred_at,
            deliveries=1,
        )
        with pytest.raises(RuntimeError), transaction.atomic():
            publish("order.paid", {"n": 2}, partner=partner)
            raise RuntimeError("roll back")
        assert len(seen.named("event_published")) == 1, "nothing for a rollback"


def test_delivery_signals_carry_the_attempt(event_types, receiver):
    partner = PartnerFactory(name="Acme", contact_email="ops@acme.example")
    endpoint = make_endpoint(partner, url=receiver.url_for(), retry_policy={"max_attempts": 2})
    receiver.script(Response(200), Response(500), Response(502))
    with Recorder() as seen:
        ok = publish("order.paid", {}, partner=partner).deliveries.get()
        engine.deliver([ok.pk])
        bad = publish("order.refunded", {}, partner=partner).deliveries.get()
        engine.deliver([bad.pk])
        Delivery.objects.filter(pk=bad.pk).update(next_attempt_at=timezone.now())
        engine.deliver([bad.pk])
    (succeeded,) = seen.named("delivery_succeeded")
    assert succeeded.delivery_id == ok.public_id and succeeded.status_code == 200
    assert succeeded.outcome == "succeeded" and succeeded.error == "" and succeeded.attempt == 1
    assert succeeded.endpoint == signals.EndpointInfo(
        endpoint_id=endpoint.public_id,
        name=endpoint.name,
        url=endpoint.url,
        enabled=True,
        partner_id=partner.public_id,
        partner_name="Acme",
        contact_email="ops@acme.example",
    )
    (failed,) = seen.named("delivery_failed")
    assert failed.delivery_id == bad.public_id and failed.event_type == "order.refunded"
    assert failed.outcome == "failed" and failed.status_code == 500 and failed.attempt == 1
    assert failed.error == "HTTP 500" and failed.next_attempt_at > bad.created_at
    (dead,) = seen.named("delivery_dead")
    assert dead.outcome == "dead" and dead.attempt == 2 and dead.status_code == 502
    assert dead.next_attempt_at is None and dead.trigger == "retry"


def test_endpoint_switch_signals_after_commit_not_on_rollback(event_types):
    endpoint = make_endpoint()
    with Recorder() as seen:
        with transaction.atomic():
            endpoint_disable(endpoint, by="admin:sam", reason="maintenance")
            assert seen.named("endpoint_disabled") == []
        (off,) = seen.named("endpoint_disabled")
        assert off.endpoint.endpoint_id == endpoint.public_id and not off.enabled
        assert (off.by, off.kind, off.reason) == ("admin:sam", "manual", "maintenance")
        assert mail.outbox == [], "a person's switch-off is not mailed (EmailNotifier)"
        with pytest.raises(RuntimeError), transaction.atomic():
            endpoint_enable(endpoint, by="admin:sam")
            raise RuntimeError("roll back")
        assert seen.named("endpoint_enabled") == []
        endpoint_enable(endpoint, by="admin:kim")
        (on,) = seen.named("endpoint_enabled")
        assert on.enabled and on.by == "admin:kim" and on.endpoint.enabled


def test_circuit_signals_when_it_opens_and_when_a_probe_closes_it(event_types, receiver, clock):
    endpoint = make_endpoint(url=receiver.url_for(), retry_policy=FAST_RETRY)
    receiver.respond_with(lambda r: Response(500))
    with Recorder() as seen:
        for n in range(6):
            engine.deliver([publish("order.paid", {"n": n}).deliveries.get().pk])
        (opened,) = seen.named("circuit_opened")  # once: the 6th failure changed nothing
        assert opened.opened and opened.consecutive_failures == 5
        assert opened.retry_at > timezone.now() and opened.failing_since is not None
        assert seen.named("circuit_closed") == []
        receiver.respond_with(lambda r: Response(200))
        clock.move_to(opened.retry_at + timedelta(seconds=1))
        engine.deliver(due_ids(endpoint))
        (closed,) = seen.named("circuit_closed")
        assert not closed.opened and closed.consecutive_failures == 0
        assert closed.endpoint.endpoint_id == endpoint.public_id


def test_endpoint_failing_signal_and_410_disable(event_types, receiver, clock, window):
    endpoint = make_endpoint(url=receiver.url_for(), retry_policy=FAST_RETRY)
    receiver.respond_with(lambda r: Response(500))
    publish("order.paid", {})
    start = timezone.now()
    with Recorder() as seen:
        attempt_at(clock, endpoint, start)
        attempt_at(clock, endpoint, start + timedelta(hours=5.5))
        (failing,) = seen.named("endpoint_failing")
        assert failing.stage == 50 and failing.consecutive_failures == 2
        assert failing.disable_at == failing.failing_since + timedelta(hours=WINDOW_HOURS)
        assert failing.last_error == "HTTP 500: ok"  # status and what the receiver said
        receiver.respond_with(lambda r: Response(410))
        attempt_at(clock, endpoint, start + timedelta(hours=5.6))
        (off,) = seen.named("endpoint_disabled")
        assert (off.by, off.kind, off.reason) == ("system", "gone", "receiver answered 410")


def test_no_listener_no_payload_built():
    built = []
    signals.send_on_commit(signals.delivery_succeeded, lambda: built.append(1))
    assert not signals.delivery_succeeded.has_listeners() and built == []


# --- notifiers --------------------------------------------------------------------------

CALLS = []


class Exploding:
    """A notifier that raises on everything."""

    def __call__(self, notification):
        CALLS.append(notification)
        raise RuntimeError("notifier bug")


def recording_notifier(notification):
    CALLS.append(notification)


recording_notifier.signals = ("endpoint_disabled",)


@pytest.fixture
def calls():
    CALLS.clear()
    yield CALLS
    CALLS.clear()


def test_a_notifier_that_raises_does_not_break_delivery(
    event_types, receiver, settings, calls, caplog
):
    settings.WEBHOOKHUB_NOTIFIERS = [
        "tests.deliveries.test_notify.Exploding",
        "webhookhub.notifiers.EmailNotifier",
    ]
    settings.ADMINS = [("Staff", "staff@hub.example")]
    endpoint = make_endpoint(url=receiver.url_for())
    receiver.script(Response(200), Response(410))
    first = publish("order.paid", {}).deliveries.get()
    engine.deliver([first.pk])
    first.refresh_from_db()
    assert first.status == DeliveryStatus.SUCCEEDED and first.attempts.count() == 1
    second = publish("order.paid", {}).deliveries.get()
    engine.deliver([second.pk])
    endpoint.refresh_from_db()
    assert not endpoint.enabled, "the 410 still switched it off"
    assert len(mail.outbox) == 1, "the next notifier still ran"
    assert any(
        r.name == "webhookhub.notifiers"
        and r.getMessage().startswith("notifier tests.deliveries.test_notify.Exploding failed")
        and r.exc_info
        for r in caplog.records
    ), "logged with its traceback"
    kinds = {type(n).__name__ for n in calls}
    assert {"EventPublished", "DeliveryOutcome", "EndpointSwitched"} <= kinds


def test_a_signal_in_a_web_request_queues_the_notifier(event_types, settings, calls):
    settings.WEBHOOKHUB_NOTIFIERS = ["tests.deliveries.test_notify.recording_notifier"]
    partner = PartnerFactory()
    endpoint = make_endpoint(partner)
    assert not signals.delivery_succeeded.has_listeners(), "only the signals it wants"
    _, raw = api_token_create(role="partner", partner=partner, name="t", by="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    OrmQ.objects.all().delete()
    answer = client.post(f"/api/v1/endpoints/{endpoint.public_id}/disable/", {}, format="json")
    assert answer.status_code == 200
    assert calls == [], "not called in the request"
    (row,) = [r for r in OrmQ.objects.all() if r.task["func"] == notifiers.NOTIFY_TASK]
    path, notification = row.task["args"]
    assert path == "tests.deliveries.test_notify.recording_notifier"
    notifiers.notify(path, notification)  # what the worker runs
    assert calls == [notification] and notification.endpoint.endpoint_id == endpoint.public_id


def test_slack_notifier_posts_to_an_incoming_webhook(event_types, receiver, settings):
    settings.WEBHOOKHUB_NOTIFIERS = ["webhookhub.notifiers.SlackNotifier"]
    settings.WEBHOOKHUB_SLACK_WEBHOOK_URL = receiver.url_for("/slack/T000/B000")
    partner = PartnerFactory(name="Acme")
    endpoint = make_endpoint(
        partner, name="orders", url=receiver.url_for("/hook"), retry_policy={"max_attempts": 1}
    )
    receiver.respond_with(lambda r: Response(200) if r.path.startswith("/slack") else Response(500))
    delivery = publish("order.paid", {}, partner=partner).deliveries.get()
    engine.deliver([delivery.pk])
    posts = [r for r in receiver.wait_for(2) if r.path.startswith("/slack")]
    (post,) = posts
    assert post.method == "POST" and post.headers["content-type"] == "application/json"
    assert post.json() == {
        "text": f"Delivery {delivery.public_id} of {delivery.event.public_id} (order.paid) to "
        "orders (Acme) is dead after 1 attempts: HTTP 500"
    }
    assert "webhook-signature" not in post.headers
    endpoint_disable(endpoint, by="admin:sam", reason="maintenance")
    post = receiver.wait_for(3)[-1]
    assert post.json() == {"text": "Endpoint orders (Acme) was switched off: maintenance"}


def test_the_signals_are_importable_from_deliveries_signals_as_spec_names_them():
    import deliveries.signals
    import webhookhub.signals

    for name in deliveries.signals.__all__:
        assert getattr(deliveries.signals, name) is getattr(webhookhub.signals, name)
