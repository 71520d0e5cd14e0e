"""Retention (`prune_events` with the WEBHOOKHUB_RETENTION_DAYS_* settings) and erasure
(`expunge_payloads`), against the real engine and a real receiver."""

import io
import json
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone

from audit.models import Action, AuditEntry
from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus
from deliveries.services import event_replay
from events.models import Event
from events.services import publish
from tests.factories import PartnerFactory, make_endpoint
from tests.ops.conftest import manage, run_queue
from tests.receiver import Response

pytestmark = pytest.mark.django_db(transaction=True)


def command(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


@pytest.fixture
def history(event_types, receiver):
    """Events of 40 days ago: `ok` (every delivery succeeded), `nobody` and `notice` (no
    delivery), `dead` and `cancelled` (failed), `waiting` (a delivery still retrying);
    and one of today."""
    make_endpoint(url=receiver.url_for(), retry_policy={"max_attempts": 1})
    receiver.respond_with(
        lambda request: Response(500) if b'"fail"' in request.body else Response()
    )
    with time_machine.travel(timezone.now() - timedelta(days=40)):
        ok = [publish("order.paid", {"n": i}) for i in range(2)]
        dead = publish("order.paid", {"fail": True})
        cancelled = publish("order.paid", {"n": "cancel"})
        waiting = publish("order.paid", {"n": "waiting"})
        nobody = publish("order.paid", {"n": "no endpoint"}, partner=PartnerFactory())
        Delivery.objects.filter(event__in=[cancelled, waiting]).update(
            next_attempt_at=timezone.now() + timedelta(days=1000)
        )
        run_queue()
    Delivery.objects.filter(event=cancelled).update(status=DeliveryStatus.CANCELLED)
    Delivery.objects.filter(event=waiting).update(status=DeliveryStatus.RETRYING)
    recent = publish("order.paid", {"n": "recent"})
    run_queue()
    assert Delivery.objects.get(event=dead).status == DeliveryStatus.DEAD
    assert not Delivery.objects.filter(event=nobody).exists()
    # The dead delivery's notice: an event nobody subscribed to, of 40 days ago too.
    notice = Event.objects.get(event_type__name="webhookhub.delivery.dead")
    return {
        "ok": ok, "nobody": nobody, "notice": notice, "dead": dead, "cancelled": cancelled,
        "waiting": waiting, "recent": recent,
    }  # fmt: skip


def _left() -> set[int]:
    return set(Event.objects.values_list("pk", flat=True))


def test_prune_uses_the_succeeded_and_failed_retention_settings(history, settings):
    settings.WEBHOOKHUB_RETENTION_DAYS_SUCCEEDED = "30"
    settings.WEBHOOKHUB_RETENTION_DAYS_FAILED = "60"
    everything = _left()

    out = command("prune_events", "--dry-run")
    assert "Would delete 4 events, 2 deliveries and 2 attempts" in out
    assert "kept 1 events with deliveries still unfinished" in out
    assert "2 failed events not yet past their retention" in out
    assert _left() == everything

    command("prune_events")
    ok, nobody, notice = history["ok"], history["nobody"], history["notice"]
    assert _left() == everything - {e.pk for e in ok} - {nobody.pk, notice.pk}
    assert not Delivery.objects.filter(event__in=ok).exists()
    assert not DeliveryAttempt.objects.filter(delivery__event__in=ok).exists()

    # Failed events go once past their own (longer) retention; the waiting one stays.
    settings.WEBHOOKHUB_RETENTION_DAYS_FAILED = "35"
    out = command("prune_events")
    assert "Deleted 2 events, 2 deliveries and 1 attempts" in out
    assert _left() == {history["waiting"].pk, history["recent"].pk}


def test_a_class_without_a_setting_is_kept_forever(history, settings):
    settings.WEBHOOKHUB_RETENTION_DAYS_SUCCEEDED = ""
    settings.WEBHOOKHUB_RETENTION_DAYS_FAILED = "30"
    out = command("prune_events")
    assert "Deleted 2 events" in out and "succeeded: kept forever" in out
    assert not Event.objects.filter(pk__in=[history["dead"].pk, history["cancelled"].pk]).exists()
    assert Event.objects.filter(pk__in=[e.pk for e in history["ok"]]).count() == 2


def test_older_than_still_applies_one_age_to_every_finished_event(history, settings):
    settings.WEBHOOKHUB_RETENTION_DAYS_SUCCEEDED = "1000"
    settings.WEBHOOKHUB_RETENTION_DAYS_FAILED = "1000"
    out = command("prune_events", "--older-than", "30", "--batch-size", "2")
    assert "Deleted 6 events, 4 deliveries and 3 attempts" in out and "kept 1 events" in out
    assert _left() == {history["waiting"].pk, history["recent"].pk}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "no retention: give --older-than DAYS or set WEBHOOKHUB_RETENTION_DAYS"),
        ({"WEBHOOKHUB_RETENTION_DAYS_FAILED": "soon"}, "must be a whole number of days"),
        ({"WEBHOOKHUB_RETENTION_DAYS_SUCCEEDED": "0"}, "must be a whole number of days"),
    ],
)
def test_prune_without_a_retention_refuses_and_deletes_nothing(history, env, message):
    everything = _left()
    result = manage("prune_events", env={
        "WEBHOOKHUB_RETENTION_DAYS_SUCCEEDED": "", "WEBHOOKHUB_RETENTION_DAYS_FAILED": "", **env
    })  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert _left() == everything


# --- expunge_payloads --------------------------------------------------------------------


def test_expunge_payloads_erases_a_partners_events_and_keeps_the_history(event_types, receiver):
    acme, globex = PartnerFactory(name="Acme"), PartnerFactory(name="Globex")
    make_endpoint(acme, url=receiver.url_for("/acme"), retry_policy={"max_attempts": 3})
    make_endpoint(globex, url=receiver.url_for("/globex"))
    receiver.respond_with(
        lambda r: Response(503, body=r.body) if r.path == "/acme" else Response(body=r.body)
    )
    mine = [publish("order.paid", {"email": f"a{i}@acme.example"}, partner=acme) for i in range(3)]
    theirs = publish("order.paid", {"email": "g@globex.example"}, partner=globex)
    run_queue()
    assert DeliveryAttempt.objects.filter(response_body__contains="@acme.example").count() == 3

    out = command("expunge_payloads", "--partner", "Acme", "--dry-run")
    assert "Would erase the payloads of 3 events (0 already erased)" in out
    assert "would cancel 3 waiting deliveries; 3 attempts emptied" in out
    assert not Event.objects.filter(expunged_at__isnull=False).exists()

    out = command("expunge_payloads", "--partner", acme.public_id, "--reason", "GDPR #12")
    assert "Erased the payloads of 3 events (0 already erased); cancelled 3" in out
    for event in Event.objects.filter(pk__in=[e.pk for e in mine]):
        assert event.payload == {"expunged": True} and "@acme.example" not in event.body
        assert event.expunged_by.startswith("command:expunge_payloads")
    assert not DeliveryAttempt.objects.filter(response_body__contains="@acme.example").exists()
    assert not Delivery.objects.filter(last_error__contains="@acme.example").exists()
    assert set(Delivery.objects.filter(event__in=mine).values_list("status", flat=True)) == {
        DeliveryStatus.CANCELLED
    }
    entries = AuditEntry.objects.filter(action=Action.EXPUNGED)
    assert entries.count() == 3 and {e.reason for e in entries} == {"GDPR #12"}
    theirs.refresh_from_db()
    assert theirs.expunged_at is None and "g@globex.example" in theirs.body

    # Nothing sends them again, whatever asks.
    sent = len(receiver.requests)
    out = command("replay_deliveries", "--partner", "Acme", "--status", "cancelled")
    assert "Replayed 0 deliveries" in out
    with pytest.raises(ValidationError, match="was erased"):
        event_replay(Event.objects.get(pk=mine[0].pk), by="test")
    run_queue()
    assert len(receiver.requests) == sent

    again = command("expunge_payloads", "--event", mine[0].public_id)
    assert "Erased the payloads of 0 events (1 already erased)" in again


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --partner, --event or --before"),
        (["--partner", "Nobody"], "no partner named or with id 'Nobody'"),
        (["--event", "evt_nope"], "no event with id evt_nope"),
        (["--before", "yesterday-ish"], "is not a time"),
        (["--before", "1d", "--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)
def test_expunge_payloads_refuses_bad_arguments_and_erases_nothing(event_types, args, message):
    publish("order.paid", {"email": "x@example.com"})
    with pytest.raises(CommandError, match=message):
        command("expunge_payloads", *args)
    assert not Event.objects.filter(expunged_at__isnull=False).exists()
    assert "x@example.com" in Event.objects.get().body


def test_expunge_payloads_before_a_time_and_its_help(event_types):
    with time_machine.travel(timezone.now() - timedelta(days=10)):
        old = publish("order.paid", {"email": "old@example.com"})
    new = publish("order.paid", {"email": "new@example.com"})
    out = command("expunge_payloads", "--before", "7d")
    assert "Erased the payloads of 1 events" in out
    assert json.loads(Event.objects.get(pk=old.pk).body)["data"] == {"expunged": True}
    assert Event.objects.get(pk=new.pk).expunged_at is None
    result = manage("expunge_payloads", "--help")
    assert result.returncode == 0 and "usage:" in result.stdout and "--partner" in result.stdout


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
def test_prune_and_erasure_skip_rows_someone_holds_instead_of_waiting(history, settings):
    """A bulk replay (or a claim) holding a delivery: the prune and the erasure leave its
    event for their next run at once — no waiting, no deadlock — and finish it then."""
    dead = history["dead"]
    holding, release = threading.Event(), threading.Event()

    def hold():
        with transaction.atomic():
            Delivery.objects.select_for_update().get(event=dead)
            holding.set()
            release.wait(30)
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        out = command("prune_events", "--older-than", "30")
        assert "kept 2 events" in out and Event.objects.filter(pk=dead.pk).exists()
        with pytest.raises(CommandError, match=f"1 events not erased.*{dead.public_id}"):
            command("expunge_payloads", "--event", dead.public_id)
        assert time.monotonic() - started < 5
        assert Event.objects.get(pk=dead.pk).expunged_at is None
    finally:
        release.set()
        holder.join()
    out = command("expunge_payloads", "--event", dead.public_id)
    assert "Erased the payloads of 1 events" in out
    out = command("prune_events", "--older-than", "30")
    assert "Deleted 1 events" in out and not Event.objects.filter(pk=dead.pk).exists()
