"""/healthz and /readyz, against a real database, a real qcluster and a real gunicorn."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from deliveries.models import WorkerLease
from tests.e2e.conftest import wait_until
from tests.ops.conftest import sample
from webhookhub import health

pytestmark = pytest.mark.django_db(transaction=True)


def heartbeat(seconds_ago: float) -> None:
    now = timezone.now()
    WorkerLease.objects.update_or_create(
        name="dispatcher",
        defaults={"expires_at": now, "heartbeat_at": now - timedelta(seconds=seconds_ago)},
    )


def test_healthz_touches_nothing(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_ready_with_a_recent_cluster_heartbeat(client):
    heartbeat(seconds_ago=2)
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "migrations", "broker", "cluster", "workers"}
    assert all(check["status"] == "ok" for check in body["checks"].values())
    assert body["checks"]["cluster"]["age_seconds"] < 60


def test_readyz_is_503_when_the_cluster_heartbeat_is_old_or_missing(client, settings):
    settings.WEBHOOKHUB_READY_HEARTBEAT_SECONDS = 120
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "no qcluster has ever run" in response.json()["checks"]["cluster"]["detail"]
    heartbeat(seconds_ago=121)
    body = client.get("/readyz").json()
    assert body["status"] == "unavailable"
    assert "no dispatcher heartbeat for 121 s" in body["checks"]["cluster"]["detail"]
    assert body["checks"]["database"]["status"] == "ok"


def test_readyz_is_503_when_the_configured_cluster_has_one_worker(client, settings):
    """One worker is taken by the dispatcher loop: such a cluster delivers nothing."""
    heartbeat(seconds_ago=1)
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "workers": 1}
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    workers = body["checks"]["workers"]
    assert workers["status"] == "error"
    assert "WEBHOOKHUB_Q_WORKERS is 1" in workers["detail"]
    assert "no delivery is sent" in workers["detail"]
    assert body["checks"]["cluster"]["status"] == "ok", "the other checks still run"
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "workers": 2}
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["workers"] == {"status": "ok", "workers": 2}


def test_readyz_is_503_while_a_migration_is_unapplied(client, monkeypatch):
    heartbeat(seconds_ago=1)
    monkeypatch.setattr(health, "_migrations_ok_at", 0.0)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT app, name FROM django_migrations WHERE app = 'deliveries' ORDER BY id DESC"
        )
        app, name = cursor.fetchone()
        # As if the code of a new release ran before its `release: migrate` did.
        cursor.execute("DELETE FROM django_migrations WHERE app = %s AND name = %s", [app, name])
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        migrations = response.json()["checks"]["migrations"]
        assert migrations["status"] == "error" and f"{app}.{name}" in migrations["detail"]
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, %s)",
                [app, name, timezone.now()],
            )
    assert client.get("/readyz").status_code == 200


@pytest.mark.e2e
@pytest.mark.xdist_group("ops")
def test_readyz_follows_a_real_cluster(client, settings, event_types, start_cluster):
    settings.WEBHOOKHUB_READY_HEARTBEAT_SECONDS = 3
    assert client.get("/readyz").status_code == 503  # nothing has ever run
    cluster = start_cluster(workers=2)
    wait_until(
        lambda: client.get("/readyz").status_code == 200, timeout=30, message="ready with cluster"
    )
    cluster.stop()
    response = wait_until(
        lambda: (r := client.get("/readyz")).status_code == 503 and r,
        timeout=30,
        message="not ready once the cluster is gone",
    )
    cluster_check = response.json()["checks"]["cluster"]
    assert (
        cluster_check["status"] == "error" and "is a qcluster running?" in cluster_check["detail"]
    )


@pytest.mark.e2e
@pytest.mark.xdist_group("ops")
def test_readyz_is_503_when_the_database_and_broker_are_unreachable(start_web):
    web = start_web(
        env={
            "DATABASE_URL": "postgres://postgres@127.0.0.1:1/webhookhub_nowhere",
            "TEST_REDIS_URL": "redis://127.0.0.1:1/13",
        }
    )
    assert web.get("/healthz").status_code == 200
    response = web.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["status"] == "error"
    assert "OperationalError" in checks["database"]["detail"]
    assert checks["broker"]["status"] == "error"
    assert checks["migrations"]["status"] == checks["cluster"]["status"] == "skipped"
    assert checks["workers"]["status"] == "ok", "needs no database"
    # /metrics still answers (the counters), and says the database could not be read.
    metrics = web.get("/metrics")
    assert metrics.status_code == 200
    assert sample(metrics.text, "webhookhub_metrics_database_up") == 0
