"""The operations commands, run with real data against the real engine and receivers."""

import io
import threading
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ
from standardwebhooks.webhooks import Webhook

from deliveries.maintenance import deliveries_replay
from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus, Trigger
from deliveries.selectors import deliveries_for_replay
from endpoints.models import ApiToken, Partner
from events.models import Event
from events.services import publish
from tests.factories import PartnerFactory, make_endpoint
from tests.ops.conftest import manage, queued_ids, run_queue
from tests.queue import take
from tests.receiver import Response

pytestmark = pytest.mark.django_db(transaction=True)


def command(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def dead_deliveries(receiver, endpoint, n=1, event_type="order.paid"):
    """`n` deliveries to `endpoint` that used their only attempt on a 500."""
    receiver.respond_with(lambda request: Response(500, b"down"))
    events = [publish(event_type, {"n": i}) for i in range(n)]
    run_queue()
    receiver.respond_with(None)
    rows = list(Delivery.objects.filter(event__in=events, endpoint=endpoint))
    assert {d.status for d in rows} == {DeliveryStatus.DEAD}
    return rows


# --- create_partner / create_api_token ---------------------------------------------------


def test_create_partner_prints_its_id_and_dry_run_creates_nothing():
    assert command("create_partner", "Acme", "--dry-run").startswith("Would create")
    assert not Partner.objects.exists()
    out = command("create_partner", "Acme", "--email", "ops@acme.example")
    partner = Partner.objects.get()
    assert out.strip() == partner.public_id and partner.contact_email == "ops@acme.example"


def test_create_partner_twice_exits_non_zero_with_one_line():
    assert manage("create_partner", "Acme").returncode == 0
    result = manage("create_partner", "Acme", "--email", "not-an-address")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("CommandError: ")
    assert "name" in result.stderr and "email" in result.stderr
    assert Partner.objects.count() == 1


def test_create_api_token_prints_the_token_alone_on_the_last_line():
    partner = PartnerFactory(name="Acme")
    out = command("create_api_token", "--role", "partner", "--partner", "Acme", "--name", "ci")
    raw = out.splitlines()[-1]
    token = ApiToken.objects.get()
    assert raw.startswith("whk_") and raw == raw.strip()
    assert token.key_hash == ApiToken.hash(raw) and raw not in token.key_hash
    assert (token.partner, token.role, token.name) == (partner, "partner", "ci")
    assert token.prefix in out.splitlines()[0] and raw not in out.splitlines()[0]
    out = command("create_api_token", "--role", "publisher")
    assert ApiToken.objects.filter(role="publisher", partner=None).count() == 1
    command("create_api_token", "--role", "partner", "--partner", partner.public_id, "--dry-run")
    assert ApiToken.objects.count() == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "partner"], "needs --partner"),
        (["--role", "partner", "--partner", "Nobody"], "no partner"),
        (["--role", "publisher", "--partner", "Acme"], "publisher token is not tied"),
    ],
)
def test_create_api_token_refuses_bad_arguments(args, message):
    PartnerFactory(name="Acme")
    with pytest.raises(CommandError, match=message):
        command("create_api_token", *args)
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["create_api_token", "--role", "admin"],
        ["prune_events"],
        ["prune_events", "--older-than", "0"],
        ["prune_events", "--older-than", "soon"],
        ["replay_deliveries", "--status", "pending"],
        ["replay_deliveries", "--since", "yesterday-ish"],
        ["replay_deliveries", "--endpoint", "ep_nope"],
        ["replay_deliveries", "--event-type", "no.such.type"],
        ["send_test_event", "ep_nope"],
    ],
    ids=lambda args: " ".join(args),
)
def test_bad_arguments_exit_non_zero_with_a_reason(args):
    result = manage(*args)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "error" in last.lower() and len(last) > 20, result.stderr
    assert "Traceback" not in result.stderr


def test_every_command_has_help():
    for name in (
        "replay_deliveries", "recover_stuck_deliveries", "prune_events", "send_test_event",
        "create_partner", "create_api_token", "seed_demo",
    ):  # fmt: skip
        result = manage(name, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout, name


# --- send_test_event ---------------------------------------------------------------------


def test_send_test_event_shows_the_answer(event_types, receiver):
    endpoint = make_endpoint(url=receiver.url_for("/hook"))
    assert "Would send" in command("send_test_event", endpoint.public_id, "--dry-run")
    assert not receiver.requests and not Event.objects.exists()
    out = command("send_test_event", endpoint.public_id)
    (request,) = receiver.wait_for(1)
    Webhook(endpoint.signing_secret).verify(request.body, dict(request.headers))
    assert request.json()["type"] == "webhookhub.test"
    assert "HTTP 200" in out and endpoint.public_id in out
    attempt = DeliveryAttempt.objects.get()
    assert attempt.trigger == Trigger.TEST and attempt.triggered_by.startswith(
        "command:send_test_event"
    )


def test_send_test_event_to_a_failing_endpoint_exits_non_zero(event_types, receiver):
    endpoint = make_endpoint(url=receiver.url_for("/hook"))
    receiver.script(Response(503, b"maintenance"))
    result = manage("send_test_event", endpoint.public_id)
    assert result.returncode == 1
    assert "failed: HTTP 503" in result.stderr and result.stderr.strip().count("\n") == 0
    assert len(receiver.requests) == 1
    assert Delivery.objects.get().status == DeliveryStatus.DEAD  # a test is never retried


# --- replay_deliveries -------------------------------------------------------------------


def test_replay_sends_dead_deliveries_again_with_the_same_webhook_id(event_types, receiver):
    endpoint = make_endpoint(url=receiver.url_for(), retry_policy={"max_attempts": 1})
    (dead,) = dead_deliveries(receiver, endpoint)
    out = command("replay_deliveries")
    assert out.startswith("Replayed 1 deliveries")
    assert run_queue() == 1
    first, second = receiver.wait_for(2)
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    assert second.body == first.body
    dead.refresh_from_db()
    assert dead.status == DeliveryStatus.SUCCEEDED
    last = dead.attempts.get(number=2)
    assert last.trigger == Trigger.REPLAY and "replay_deliveries" in last.triggered_by


def test_replay_dry_run_changes_nothing(event_types, receiver):
    endpoint = make_endpoint(url=receiver.url_for(), retry_policy={"max_attempts": 1})
    rows = dead_deliveries(receiver, endpoint, n=3)
    before = list(Delivery.objects.order_by("pk").values())
    out = command("replay_deliveries", "--dry-run", verbosity=2)
    assert out.startswith("Would replay 3 deliveries (matching: dead 3)")
    assert all(d.public_id in out for d in rows)
    assert list(Delivery.objects.order_by("pk").values()) == before
    assert not OrmQ.objects.exists()


def test_replay_filters(event_types, receiver):
    policy = {"max_attempts": 1}
    acme, other = PartnerFactory(name="Acme"), PartnerFactory(name="Other")
    a = make_endpoint(acme, url=receiver.url_for("/a"), retry_policy=policy)
    b = make_endpoint(other, url=receiver.url_for("/b"), retry_policy=policy)
    with time_machine.travel(timezone.now() - timedelta(days=3)):
        dead_deliveries(receiver, a, n=1)
    dead_deliveries(receiver, a, n=2, event_type="order.refunded")
    dead_deliveries(receiver, a, n=1, event_type="shipment.moved")

    def would(*args):
        return int(command("replay_deliveries", "--dry-run", *args).split()[2])

    assert would() == 8  # 4 events × 2 endpoints (broadcasts)
    assert would("--endpoint", a.public_id) == 4
    assert would("--endpoint", a.public_id, "--endpoint", b.public_id) == 8
    assert would("--partner", "Other") == 4 and would("--partner", acme.public_id) == 4
    assert would("--event-type", "order.refunded") == 4
    assert would("--event-type", "order.*") == 6
    assert would("--since", "1d") == 6 and would("--until", "1d") == 2
    assert would("--since", "4d", "--until", "2d", "--partner", "Acme") == 1
    assert would("--limit", "5") == 5
    assert would("--status", "succeeded,cancelled") == 0
    Delivery.objects.filter(endpoint=b).update(status=DeliveryStatus.CANCELLED)
    assert would("--status", "dead", "--status", "cancelled") == 8
    b.enabled = False
    b.save()
    assert would("--status", "dead,cancelled") == 4
    assert would("--status", "dead,cancelled", "--include-disabled") == 8
    assert command("replay_deliveries", "--limit", "3", "--endpoint", a.public_id).startswith(
        "Replayed 3"
    )
    replayed = Delivery.objects.filter(next_trigger="replay", status=DeliveryStatus.PENDING)
    assert replayed.count() == 3 and set(queued_ids()) == {a.pk}


def test_replay_never_touches_pending_or_in_flight(event_types, receiver):
    make_endpoint(url=receiver.url_for())
    pending = publish("order.paid", {}).deliveries.get()
    flying = publish("order.paid", {}).deliveries.get()
    OrmQ.objects.all().delete()
    take([flying.pk])
    for status in ("dead", "retrying", "cancelled", "succeeded"):
        command("replay_deliveries", "--status", status)
    assert not OrmQ.objects.exists()
    assert Delivery.objects.get(pk=pending.pk).status == DeliveryStatus.PENDING
    assert Delivery.objects.get(pk=flying.pk).status == DeliveryStatus.IN_FLIGHT
    # And what one run queued is pending: a second run does not queue it again.
    Delivery.objects.filter(pk=pending.pk).update(status=DeliveryStatus.DEAD)
    assert command("replay_deliveries").startswith("Replayed 1")
    assert command("replay_deliveries").startswith("Replayed 0")
    assert queued_ids() == [pending.endpoint_id]
    assert Delivery.objects.get(pk=pending.pk).next_trigger == "replay"


@pytest.mark.skipif(
    "connection.vendor != 'postgresql'",
    reason="SQLite runs one writer at a time: two runs cannot interleave there",
)
def test_overlapping_replay_runs_queue_each_delivery_once(event_types, receiver, settings):
    settings.WEBHOOKHUB_CIRCUIT_FAILURE_THRESHOLD = 100  # 7 failures in a row: keep it closed
    endpoint = make_endpoint(url=receiver.url_for(), retry_policy={"max_attempts": 1})
    dead = dead_deliveries(receiver, endpoint, n=7)
    first_batch_locked, second_run_done = threading.Event(), threading.Event()
    first_run = {}

    def hold_first_batch(n):
        if not first_batch_locked.is_set():
            first_batch_locked.set()
            assert second_run_done.wait(30)

    def run_first():
        try:
            first_run["queued"] = deliveries_replay(
                deliveries_for_replay(), by="run 1", batch_size=3, progress=hold_first_batch
            )
        finally:
            connection.close()

    thread = threading.Thread(target=run_first)
    thread.start()
    assert first_batch_locked.wait(30)
    # Run 1 holds its first batch (3 rows, locked, not committed): run 2 skips those.
    second = command("replay_deliveries", "--batch-size", "2")
    second_run_done.set()
    thread.join(30)
    assert first_run["queued"] == 3 and second.startswith("Replayed 4")
    assert set(queued_ids()) == {d.endpoint_id for d in dead}
    assert Delivery.objects.filter(next_trigger="replay", status="pending").count() == 7
    run_queue()
    requests = receiver.wait_for(14)
    assert len(requests) == 14  # 7 original attempts + 7 replays, none twice
    by = dict(DeliveryAttempt.objects.filter(number=2).values_list("delivery_id", "triggered_by"))
    assert sorted(by) == sorted(d.pk for d in dead)
    assert sorted(by.values()).count("run 1") == 3


def test_replay_progress_only_on_a_terminal_and_never_with_quiet(event_types, receiver):
    endpoint = make_endpoint(url=receiver.url_for(), retry_policy={"max_attempts": 1})
    dead_deliveries(receiver, endpoint, n=2)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for args, shown in ((["--quiet"], False), ([], True)):
        Delivery.objects.update(status=DeliveryStatus.DEAD)
        err = Terminal()
        call_command("replay_deliveries", *args, stdout=io.StringIO(), stderr=err)
        assert ("replayed: 2" in err.getvalue()) is shown, err.getvalue()
    Delivery.objects.update(status=DeliveryStatus.DEAD)
    err = io.StringIO()  # not a terminal (cron): nothing on stderr
    call_command("replay_deliveries", stdout=io.StringIO(), stderr=err)
    assert err.getvalue() == ""


# --- recover_stuck_deliveries ------------------------------------------------------------


def test_recover_hands_over_expired_leases_and_lost_tasks(event_types, receiver):
    endpoint = make_endpoint(url=receiver.url_for())
    lost = publish("order.paid", {"lost": True}).deliveries.get()
    crashed = publish("order.paid", {"crashed": True}).deliveries.get()
    OrmQ.objects.all().delete()  # the broker lost every task
    take([crashed.pk])  # a worker took it, then died
    later = timezone.now() + timedelta(seconds=endpoint.timeout_seconds + 60)
    with time_machine.travel(later, tick=False):
        fresh = publish("order.paid", {"fresh": True}).deliveries.get()
        OrmQ.objects.all().delete()
        out = command("recover_stuck_deliveries", "--dry-run")
        assert out.startswith("Would hand 2 deliveries over")
        assert "expired lease (worker died): 1" in out
        assert "task was lost (broker): 1" in out
        assert not OrmQ.objects.exists()
        out = command("recover_stuck_deliveries")
        assert out.startswith("Handed 2 deliveries to the workers")
        assert queued_ids() == [endpoint.pk]
        assert Delivery.objects.get(pk=crashed.pk).status == DeliveryStatus.PENDING
        run_queue()
    # The endpoint's drain sent everything due, the fresh one too.
    receiver.wait_for(3)
    statuses = dict(Delivery.objects.values_list("pk", "status"))
    assert statuses[lost.pk] == statuses[crashed.pk] == statuses[fresh.pk] == "succeeded"


def test_recover_warns_when_no_cluster_runs(event_types):
    err = io.StringIO()
    call_command("recover_stuck_deliveries", stdout=io.StringIO(), stderr=err)
    assert "no qcluster seems to be running" in err.getvalue()


# --- prune_events ------------------------------------------------------------------------


def test_prune_deletes_old_finished_events_in_batches_and_keeps_waiting_ones(event_types, receiver):
    make_endpoint(url=receiver.url_for(), retry_policy={"max_attempts": 2})
    receiver.respond_with(
        lambda request: Response(500) if b'"fail"' in request.body else Response()
    )
    with time_machine.travel(timezone.now() - timedelta(days=40)):
        old_ok = [publish("order.paid", {"n": i}) for i in range(5)]
        old_waiting = publish("order.paid", {"fail": True})
        run_queue()
    # Its retry is not due yet when the recent one is delivered.
    Delivery.objects.filter(event=old_waiting).update(
        next_attempt_at=timezone.now() + timedelta(hours=1)
    )
    recent = publish("order.paid", {"n": "recent"})
    run_queue()
    assert Delivery.objects.get(event=old_waiting).status == DeliveryStatus.RETRYING
    counts = (Event.objects.count(), Delivery.objects.count(), DeliveryAttempt.objects.count())
    assert counts == (7, 7, 7)

    out = command("prune_events", "--older-than", "30", "--dry-run", "--batch-size", "2")
    assert "Would delete 5 events, 5 deliveries and 5 attempts" in out
    assert "kept 1 events" in out
    assert (Event.objects.count(), Delivery.objects.count(), DeliveryAttempt.objects.count()) == (
        counts
    )
    out = command("prune_events", "--older-than", "30", "--batch-size", "2")
    assert "Deleted 5 events, 5 deliveries and 5 attempts" in out
    assert set(Event.objects.values_list("pk", flat=True)) == {old_waiting.pk, recent.pk}
    assert Delivery.objects.count() == 2 and DeliveryAttempt.objects.count() == 2
    assert not Event.objects.filter(pk__in=[e.pk for e in old_ok]).exists()
    assert "Deleted 0 events" in command("prune_events", "--older-than", "30")
