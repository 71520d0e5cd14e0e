"""Real `manage.py qcluster` processes against the test database.

A cluster runs in its own process group so a test can SIGKILL all of it at once.
Tests here use `transaction=True` data: the cluster must see committed rows.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "postgresql":
        user = settings.get("USER") or "postgres"
        host = settings.get("HOST") or "127.0.0.1"
        port = settings.get("PORT") or 5432
        return f"postgres://{user}@{host}:{port}/{settings['NAME']}"
    return f"sqlite:///{settings['NAME']}"


class Cluster:
    """One qcluster subprocess; `kill()` is SIGKILL to its whole process group."""

    def __init__(self, *, redis_url: str = "", workers: int = 3, extra_env: dict | None = None):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "webhookhub.test_settings",
            "DATABASE_URL": database_url(),
            "TEST_REDIS_URL": redis_url,
            "WEBHOOKHUB_Q_WORKERS": str(workers),
            "WEBHOOKHUB_LEASE_MARGIN_SECONDS": "2",
            "WEBHOOKHUB_DISPATCH_RESERVATION_SECONDS": "5",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.log = open(ROOT / "var" / f"qcluster-{os.getpid()}-{time.monotonic_ns()}.log", "w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        self.kill()
        with contextlib.suppress(ProcessLookupError):  # stray children of a killed group
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()


@pytest.fixture
def start_cluster(transactional_db):
    clusters: list[Cluster] = []

    def start(**kwargs) -> Cluster:
        cluster = Cluster(**kwargs)
        clusters.append(cluster)
        return cluster

    yield start
    for cluster in clusters:
        cluster.stop()
    connection.close()


def wait_until(predicate, *, timeout: float, interval: float = 0.1, message: str = ""):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s: {message}")
