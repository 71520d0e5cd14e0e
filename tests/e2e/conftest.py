"""Real `manage.py qcluster` processes against the test database.

A cluster runs in its own process group so a test can SIGKILL all of it at once.
Tests here use `transaction=True` data: the cluster must see committed rows.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# What every browser test module puts in its `pytestmark`.
BROWSER_TEST = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("e2e"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
def browser():
    """Debian's Chromium, headless, driven by Playwright's sync API (which runs an event
    loop in this thread: the ORM calls a test makes between steps are still plain
    synchronous calls)."""
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page(browser):
    """A page 1366 px wide: the screen the console and the portal must fit."""
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.set_default_timeout(15_000)
    return page


def fits(page) -> None:
    """The page needs no sideways scrolling at its viewport's width."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url} is {width} px wide"


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
