"""Operations tests: real commands, a real qcluster, a real gunicorn, real receivers."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.db import connection
from django_q.models import OrmQ

from tests.e2e.conftest import ROOT, Cluster, database_url, start_cluster, wait_until  # noqa: F401
from tests.queue import run_queue  # noqa: F401  (used by tests importing it from here)


def queued_ids() -> list[int]:
    """Endpoint ids whose drain waits in the ORM broker, one entry per time queued."""
    ids = []
    for row in OrmQ.objects.order_by("id"):
        if row.task["func"] == "deliveries.tasks.drain":
            ids.extend(row.task["args"][0])
    return ids


def manage(*args, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """`python manage.py …` in a subprocess against the test database."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def subprocess_env(extra: dict | None = None) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webhookhub.test_settings",
        "DATABASE_URL": database_url(),
        "TEST_REDIS_URL": "",
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Web:
    """gunicorn serving webhookhub on a free local port, in its own process group."""

    def __init__(self, env: dict | None = None, workers: int = 2, args: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(ROOT / "var" / f"gunicorn-{os.getpid()}-{time.monotonic_ns()}.log", "w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "webhookhub.wsgi", "--bind",
             f"127.0.0.1:{self.port}", "--workers", str(workers), *args],
            cwd=ROOT,
            env=subprocess_env(env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            wait_until(self._up, timeout=60, message=f"gunicorn up on {self.url}")
        except AssertionError:
            output = self.output()
            self.stop()
            raise AssertionError(f"gunicorn did not come up on {self.url}:\n{output}") from None

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"gunicorn exited: {self.output()}")
        try:
            return requests.get(self.url + "/healthz", timeout=5).status_code == 200
        except (requests.ConnectionError, requests.Timeout):
            return False  # not listening yet, or a worker still loading the app

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, timeout=10)

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture
def start_web(transactional_db):
    servers: list[Web] = []

    def start(**kwargs) -> Web:
        server = Web(**kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
    connection.close()


def sample(text: str, name: str, **labels) -> float | None:
    """The sum of the samples `name` whose labels include `labels` in Prometheus text
    format; None if there is no such sample."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = {k: str(v) for k, v in labels.items()}
    values = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and wanted.items() <= s.labels.items()
    ]
    return sum(values) if values else None
