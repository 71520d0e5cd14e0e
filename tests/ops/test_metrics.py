"""/metrics: webhookhub's counters and state gauges, in one process and across processes."""

import glob
import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries.models import CircuitState, Delivery, DeliveryStatus, EndpointHealth, WorkerLease
from deliveries.selectors import COUNT_CAP, count_bounded, estimate_count
from endpoints.models import Endpoint
from endpoints.services import endpoint_disable
from events.services import publish
from tests.e2e.conftest import wait_until
from tests.factories import make_endpoint
from tests.ops.conftest import manage, run_queue, sample
from tests.queue import take
from tests.receiver import Response
from webhookhub.metrics import compact

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(client, settings) -> str:
    settings.WEBHOOKHUB_METRICS_CACHE_SECONDS = 0  # every scrape reads the database
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def test_counters_count_published_events_attempts_and_outcomes(
    client, settings, event_types, receiver
):
    make_endpoint(url=receiver.url_for(), retry_policy={"max_attempts": 1})
    before = scrape(client, settings)

    def delta(text, name, **labels):
        return (sample(text, name, **labels) or 0) - (sample(before, name, **labels) or 0)

    receiver.script(Response(200), Response(503), Response(200))
    for n in range(3):
        publish("order.paid", {"n": n})
    publish("shipment.moved", {})
    run_queue()
    receiver.wait_for(4)
    text = scrape(client, settings)
    assert delta(text, "webhookhub_events_published_total", event_type="order.paid") == 3
    assert delta(text, "webhookhub_events_published_total", event_type="shipment.moved") == 1
    assert delta(text, "webhookhub_deliveries_created_total") == 4
    attempts = "webhookhub_delivery_attempts_total"
    assert delta(text, attempts, outcome="succeeded", status_class="2xx", trigger="auto") == 3
    assert delta(text, attempts, outcome="http_error", status_class="5xx") == 1
    assert delta(text, "webhookhub_delivery_attempt_duration_seconds_count") == 4
    assert delta(text, "webhookhub_deliveries_completed_total", status="succeeded") == 3
    assert delta(text, "webhookhub_deliveries_completed_total", status="dead") == 1


def test_a_rolled_back_publish_is_not_counted(client, settings, event_types):
    from django.db import transaction

    make_endpoint()
    before = sample(scrape(client, settings), "webhookhub_events_published_total") or 0
    with pytest.raises(RuntimeError), transaction.atomic():
        publish("order.paid", {})
        raise RuntimeError("the caller's transaction fails")
    assert (sample(scrape(client, settings), "webhookhub_events_published_total") or 0) == before


def test_state_gauges_come_from_the_database(client, settings, event_types, receiver):
    healthy = make_endpoint(url=receiver.url_for(), name="healthy")
    off = make_endpoint(url=receiver.url_for(), name="off")
    endpoint_disable(off, by="test", reason="partner asked")
    gone = make_endpoint(url=receiver.url_for(), name="gone")
    endpoint_disable(gone, by="system", kind=Endpoint.DisabledBy.GONE)
    events = [publish("order.paid", {"n": n}) for n in range(4)]
    ids = [e.deliveries.get(endpoint=healthy).pk for e in events]
    now = timezone.now()
    Delivery.objects.filter(pk=ids[0]).update(status=DeliveryStatus.DEAD, next_attempt_at=None)
    Delivery.objects.filter(pk=ids[1]).update(
        status=DeliveryStatus.RETRYING, next_attempt_at=now - timedelta(seconds=90)
    )
    take([ids[2]])
    Delivery.objects.filter(pk=ids[2]).update(claimed_until=now - timedelta(seconds=1))
    EndpointHealth.objects.filter(pk=healthy.pk).update(circuit_state=CircuitState.OPEN)
    # ids[3] stays pending and due now (its task is still in the broker)
    WorkerLease.objects.create(
        name="dispatcher", expires_at=now, heartbeat_at=now - timedelta(seconds=30)
    )

    text = scrape(client, settings)
    assert sample(text, "webhookhub_deliveries", status="dead") == 1
    assert sample(text, "webhookhub_deliveries", status="retrying") == 1
    assert sample(text, "webhookhub_deliveries", status="in_flight") == 1
    # + the 4 held for "off" (switched off by a person: paused); "gone" got none.
    assert sample(text, "webhookhub_deliveries", status="pending") == 1 + 4
    assert sample(text, "webhookhub_dead_letters") == 1
    assert sample(text, "webhookhub_deliveries_due") == 2 + 4
    assert 90 <= sample(text, "webhookhub_deliveries_due_oldest_age_seconds") < 300
    assert sample(text, "webhookhub_deliveries_lease_expired") == 1
    assert sample(text, "webhookhub_endpoints") == 3
    assert sample(text, "webhookhub_endpoints_disabled", kind="manual") == 1
    assert sample(text, "webhookhub_endpoints_disabled", kind="gone") == 1
    assert sample(text, "webhookhub_endpoints_disabled", kind="auto") == 0
    assert sample(text, "webhookhub_endpoints_circuit_open") == 1
    assert 30 <= sample(text, "webhookhub_dispatcher_heartbeat_age_seconds") < 300
    assert sample(text, "webhookhub_queue_depth") >= 1
    assert sample(text, "webhookhub_metrics_database_up") == 1
    # django-prometheus's own metrics are still there.
    assert sample(text, "django_http_requests_total_by_method_total", method="GET") >= 1


def test_counts_stop_at_the_cap_and_estimate_beyond(event_types):
    make_endpoint()
    for n in range(5):
        publish("order.paid", {"n": n})
    rows = Delivery.objects.all()
    assert count_bounded(rows, cap=10) == (5, True)
    capped = count_bounded(rows, cap=3)
    assert capped.exact is False and capped.value >= 4
    assert estimate_count(rows) >= 0
    assert COUNT_CAP == 10_000


@pytest.mark.e2e
@pytest.mark.xdist_group("ops")
def test_counters_from_qcluster_and_command_processes_reach_gunicorn(
    event_types, receiver, start_cluster, start_web, tmp_path
):
    """The attempts are counted inside qcluster worker processes, the test event inside a
    `manage.py send_test_event` process; gunicorn's /metrics adds them all up."""
    shared = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "LOG_FORMAT": "json"}
    endpoint = make_endpoint(url=receiver.url_for())
    web = start_web(env=shared)
    cluster = start_cluster(extra_env=shared)
    for n in range(5):
        publish("order.paid", {"n": n})
    receiver.wait_for(5, timeout=30)
    wait_until(
        lambda: Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 5,
        timeout=15,
        message="5 deliveries recorded",
    )
    assert manage("send_test_event", endpoint.public_id, env=shared).returncode == 0

    def counted():
        text = web.get("/metrics").text
        return text if sample(text, "webhookhub_delivery_attempts_total") == 6 else None

    text = wait_until(counted, timeout=15, message="6 attempts on gunicorn's /metrics")
    assert sample(text, "webhookhub_delivery_attempts_total", outcome="succeeded", trigger="auto")
    assert sample(text, "webhookhub_delivery_attempts_total", trigger="test") == 1
    assert sample(text, "webhookhub_events_published_total", event_type="webhookhub.test") == 1
    assert sample(text, "webhookhub_deliveries_completed_total", status="succeeded") == 6
    assert sample(text, "webhookhub_delivery_attempt_duration_seconds_count") == 6
    assert sample(text, "webhookhub_deliveries", status="succeeded") == 6
    assert 0 <= sample(text, "webhookhub_dispatcher_heartbeat_age_seconds") < 60
    assert sample(text, "django_http_responses_total_by_status_total", status="200") >= 1

    # Every attempt log line of the workers is one JSON object with the delivery's ids.
    lines = [line for line in cluster.output().splitlines() if "delivery attempt" in line]
    logged = [json.loads(line) for line in lines]
    assert len(logged) == 5 and all(r["level"] == "INFO" for r in logged)
    for record in logged:
        assert {"event_id", "delivery_id", "endpoint_id", "attempt", "outcome", "duration_ms"} <= (
            record.keys()
        )
    assert "whsec_" not in cluster.output()

    # The cluster exits; its workers' files stay until folded into the archive, and the
    # counts survive the folding.
    cluster.stop()
    files_before = glob.glob(os.path.join(tmp_path, "counter_*.db"))
    compact(str(tmp_path))
    files_after = glob.glob(os.path.join(tmp_path, "counter_*.db"))
    assert len(files_after) < len(files_before)
    assert os.path.exists(tmp_path / "counter_archive.db")
    text = web.get("/metrics").text
    assert sample(text, "webhookhub_delivery_attempts_total") == 6
    assert sample(text, "webhookhub_events_published_total", event_type="webhookhub.test") == 1
    assert sample(text, "webhookhub_delivery_attempt_duration_seconds_count") == 6


WRITER = """
from prometheus_client import Counter, Histogram
Counter("webhookhub_test_things", "things", ["kind"]).labels("a").inc({n})
Histogram("webhookhub_test_seconds", "seconds").observe(0.2)
"""


def write_from_processes(path, *amounts):
    """Each amount counted by its own short-lived process, as cron commands do."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(path)}
    for n in amounts:
        subprocess.run([sys.executable, "-c", WRITER.format(n=n)], env=env, check=True)


def totals(path) -> dict:
    from webhookhub.metrics import _MultiProcessFiles

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in _MultiProcessFiles(str(path)).collect()
        for s in family.samples
    }


def test_compaction_folds_exited_processes_without_losing_or_doubling_counts(tmp_path, monkeypatch):
    from webhookhub import metrics as export

    write_from_processes(tmp_path, 1, 2, 3)
    before = totals(tmp_path)
    assert before[("webhookhub_test_things_total", (("kind", "a"),))] == 6
    assert compact(str(tmp_path)) == 6  # 3 counter files + 3 histogram files
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "counter_archive.db",
        "histogram_archive.db",
    ]
    assert totals(tmp_path) == before

    # Dies after the new archive is in place, before the folded files are deleted.
    write_from_processes(tmp_path, 10)
    real_remove = os.remove

    def crash_on_folded(name):
        if str(name).endswith(".folding"):
            raise KeyboardInterrupt("killed")
        real_remove(name)

    monkeypatch.setattr(export.os, "remove", crash_on_folded)
    with pytest.raises(KeyboardInterrupt):
        compact(str(tmp_path))
    monkeypatch.setattr(export.os, "remove", real_remove)
    assert totals(tmp_path)[("webhookhub_test_things_total", (("kind", "a"),))] == 16
    compact(str(tmp_path))
    assert not list(tmp_path.glob("*.folding"))
    assert totals(tmp_path)[("webhookhub_test_things_total", (("kind", "a"),))] == 16

    # Dies before the new archive replaces the old one.
    write_from_processes(tmp_path, 100)
    real_replace = os.replace

    def crash_on_commit(source, target):
        if str(target).endswith("_archive.db"):
            raise KeyboardInterrupt("killed")
        real_replace(source, target)

    monkeypatch.setattr(export.os, "replace", crash_on_commit)
    with pytest.raises(KeyboardInterrupt):
        compact(str(tmp_path))
    monkeypatch.setattr(export.os, "replace", real_replace)
    compact(str(tmp_path))
    after = totals(tmp_path)
    assert after[("webhookhub_test_things_total", (("kind", "a"),))] == 116
    assert after[("webhookhub_test_seconds_count", ())] == 5
    assert not list(tmp_path.glob("*.folding"))
    assert not any("folded" in name for name, _ in after)
