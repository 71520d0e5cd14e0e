"""The drain engine end to end: bursts of one-publish transactions through real clusters,
with a second cluster, SIGKILL, SIGTERM, ordered endpoints, a support edit mid-burst,
and people's re-sends (replay, retry now, recover) going out at once."""

import itertools
import os
import signal
import sys
import threading
import time
from collections import defaultdict
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from deliveries.models import Delivery, DeliveryStatus
from deliveries.services import delivery_retry_now, endpoint_recover, event_replay
from endpoints.services import endpoint_update
from events.services import publish
from tests.e2e.conftest import wait_until
from tests.factories import make_endpoint
from tests.receiver import Response

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("e2e"),
]


def publish_one_per_transaction(count: int, **data) -> list:
    events = []
    for n in range(count):
        with transaction.atomic():
            events.append(publish("order.paid", {"n": n, **data}))
    return events


def succeeded() -> int:
    return Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count()


def statuses() -> dict:
    counts = defaultdict(int)
    for status in Delivery.objects.values_list("status", flat=True):
        counts[status] += 1
    return dict(counts)


def assert_never_overlapping(requests) -> int:
    """No two requests for one webhook-id at the same time; returns the duplicates."""
    by_id = defaultdict(list)
    for request in requests:
        # A request whose sender was SIGKILLed never finishes at the receiver (the
        # answer cannot be written): it ended when its sender died, which is before the
        # one that re-sends it could start (after the lease); count it as ending at once.
        end = request.finished_at if request.finished_at is not None else request.started_at
        by_id[request.headers["webhook-id"]].append((request.started_at, end))
    for webhook_id, spans in by_id.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"{webhook_id} was sent twice at the same time"
    return sum(len(spans) - 1 for spans in by_id.values())


def test_burst_of_500_single_publishes_with_two_clusters(event_types, receiver, start_cluster):
    endpoint = make_endpoint(url=receiver.url_for(), max_in_flight=32)
    receiver.default = Response(200, delay=0.005)
    start_cluster()
    start_cluster()
    events = publish_one_per_transaction(500)
    wait_until(lambda: succeeded() == 500, timeout=90, message=f"all delivered: {statuses()}")
    received = {r.headers["webhook-id"] for r in receiver.requests}
    assert received == {e.public_id for e in events}
    duplicates = assert_never_overlapping(receiver.requests)
    assert receiver.max_concurrency <= 32, "the endpoint's cap holds across both clusters"
    for request in receiver.requests[:20]:
        Webhook(endpoint.signing_secret).verify(request.body, dict(request.headers))
    print(f"500 single-publish transactions, two clusters: {duplicates} duplicates")


def test_sigkill_in_the_middle_of_a_burst_loses_nothing(event_types, receiver, start_cluster):
    make_endpoint(url=receiver.url_for(), max_in_flight=32, timeout_seconds=3)
    receiver.default = Response(200, delay=0.02)
    cluster = start_cluster()
    events = publish_one_per_transaction(500)
    wait_until(lambda: len(receiver.requests) >= 100, timeout=60, message="burst under way")
    cluster.kill()
    before = len(receiver.requests)
    assert before < 500, "killed in the middle"
    start_cluster()
    wait_until(lambda: succeeded() == 500, timeout=90, message=f"all delivered after: {statuses()}")
    assert {r.headers["webhook-id"] for r in receiver.requests} == {e.public_id for e in events}
    duplicates = assert_never_overlapping(receiver.requests)
    print(f"SIGKILL after {before} of 500: {duplicates} duplicates")


def test_ordered_endpoint_keeps_strict_order_with_two_clusters(
    event_types, receiver, start_cluster
):
    make_endpoint(url=receiver.url_for(), ordered=True)
    receiver.default = Response(200, delay=0.01)
    start_cluster()
    start_cluster()
    publish_one_per_transaction(60)
    wait_until(lambda: succeeded() == 60, timeout=90, message=f"all delivered: {statuses()}")
    order = [r.json()["data"]["n"] for r in receiver.requests]
    assert order == list(range(60))
    assert receiver.max_concurrency == 1


def test_support_edit_during_a_burst_is_not_blocked(event_types, receiver, start_cluster):
    endpoint = make_endpoint(url=receiver.url_for(), max_in_flight=32)
    receiver.default = Response(200, delay=0.01)
    start_cluster()
    stop, published = threading.Event(), []

    def burst():
        try:
            while not stop.is_set():
                with transaction.atomic():
                    published.append(publish("order.paid", {"n": len(published)}))
        finally:
            connections.close_all()

    publisher = threading.Thread(target=burst)
    publisher.start()
    try:
        wait_until(lambda: len(receiver.requests) >= 50, timeout=60, message="burst under way")
        slowest = 0.0
        for n in range(5):  # what the admin's change form saves
            started = time.monotonic()
            endpoint_update(endpoint, by="admin:sam", name=f"Renamed {n}", timeout_seconds=10)
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.1)
        during = len(receiver.requests)
    finally:
        stop.set()
        publisher.join(60)
    assert len(published) > during, "the burst was still running during the edits"
    assert slowest < 1.0, f"an edit waited {slowest:.2f}s on delivery"
    total = len(published)
    wait_until(lambda: succeeded() == total, timeout=90, message=f"all delivered: {statuses()}")
    endpoint.refresh_from_db()
    assert endpoint.name == "Renamed 4" and endpoint.timeout_seconds == 10
    print(f"slowest endpoint edit during a burst of {total}: {slowest * 1000:.0f} ms")


def test_replay_retry_and_recover_go_out_within_two_seconds(event_types, receiver, start_cluster):
    endpoint = make_endpoint(url=receiver.url_for(), retry_policy={"max_attempts": 1})
    start_cluster()
    events = publish_one_per_transaction(6)
    wait_until(lambda: succeeded() == 6, timeout=30, message="first attempts")
    time.sleep(1.5)  # everything idle: what a person finds when they press the button
    lateness = []

    def sent_within(count: int, action) -> None:
        before = len(receiver.requests)
        started = time.monotonic()
        action()
        receiver.wait_for(before + count, timeout=10)
        took = receiver.requests[before + count - 1].started_at - started
        lateness.append(took)
        assert took < 2.0, f"sent {took:.2f}s after the request"

    for event in events[:3]:
        sent_within(1, lambda e=event: event_replay(e, by="admin:sam"))
        time.sleep(0.5)
    receiver.script(Response(500))
    publish("order.paid", {"fails": True})
    dead = wait_until(
        lambda: Delivery.objects.filter(status=DeliveryStatus.DEAD).first(),
        timeout=30,
        message="a dead delivery",
    )
    time.sleep(1.0)
    sent_within(1, lambda: delivery_retry_now(dead, by="admin:sam"))
    wait_until(lambda: succeeded() == 7, timeout=10, message="retried")
    receiver.script(Response(500), Response(500))
    publish_one_per_transaction(2, batch="later")
    wait_until(
        lambda: Delivery.objects.filter(status=DeliveryStatus.DEAD).count() == 2,
        timeout=30,
        message="two dead",
    )
    time.sleep(1.0)
    since = timezone.now() - timedelta(minutes=5)
    sent_within(2, lambda: endpoint_recover(endpoint, since=since, by="admin:sam"))
    print(f"replay / retry now / recover sent after: {[round(t, 3) for t in lateness]} s")


@pytest.mark.parametrize("target", ["main process", "process group"])
def test_sigterm_stops_the_cluster_within_30_s_holding_nothing(
    event_types, receiver, start_cluster, target
):
    make_endpoint(url=receiver.url_for(), max_in_flight=10, timeout_seconds=5)
    receiver.default = Response(200, delay=0.5)
    cluster = start_cluster()
    publish_one_per_transaction(200)
    wait_until(lambda: len(receiver.requests) >= 20, timeout=60, message="burst under way")
    started = time.monotonic()
    if target == "main process":
        os.kill(cluster.process.pid, signal.SIGTERM)
    else:
        os.killpg(cluster.process.pid, signal.SIGTERM)
    cluster.process.wait(35)
    took = time.monotonic() - started
    assert took < 30, f"qcluster took {took:.1f}s to stop"
    # Every process of the group is gone within the grace, not only the main one.
    try:
        wait_until(
            lambda: not _group_alive(cluster.process.pid),
            timeout=30 - (time.monotonic() - started),
            interval=0.05,
            message="group gone",
        )
    except AssertionError:
        raise AssertionError(f"group still alive: {_dump_group(cluster.process.pid)}") from None
    group_took = time.monotonic() - started
    assert Delivery.objects.filter(status=DeliveryStatus.IN_FLIGHT).count() == 0, (
        "what it held was finished or given back"
    )
    assert succeeded() < 200, "stopped in the middle of the burst"
    start_cluster()
    wait_until(lambda: succeeded() == 200, timeout=120, message=f"the rest: {statuses()}")
    print(f"SIGTERM to the {target}: main stopped in {took:.1f}s, group in {group_took:.1f}s")


def _members(pgid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry))
    return found


def _dump_group(pgid: int) -> str:
    """What each remaining member is doing (py-spy, when it can attach)."""
    import shutil
    import subprocess

    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    out = []
    for pid in _members(pgid):
        try:
            dump = subprocess.run(
                [spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=20
            )
            out.append(f"pid {pid}:\n{dump.stdout}{dump.stderr}")
        except Exception as error:
            out.append(f"pid {pid}: {error}")
    return "\n".join(out)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # Zombies of our own children still count as members until reaped: look at /proc.
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False
