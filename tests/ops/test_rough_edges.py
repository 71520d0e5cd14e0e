"""Rough edges a new operator hits first (issue 14, point 9): a `.env` copied from
`.env.example`, and test events that must never turn into retries."""

import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from cryptography.fernet import Fernet
from django.utils import timezone

from deliveries.dispatch import dispatch_due
from deliveries.models import DeliveryStatus
from deliveries.services import (
    deliveries_retry_now,
    endpoint_recover,
    endpoint_test_queue,
    event_replay,
)
from tests.factories import make_endpoint
from tests.queue import run_queue
from tests.receiver import Response

ROOT = Path(__file__).resolve().parents[2]


def checkout_with_env(tmp_path: Path, env_text: str) -> Path:
    """A copy of the project (the settings read `.env` next to `manage.py`) with this
    `.env`."""
    checkout = tmp_path / "checkout"
    shutil.copytree(
        ROOT,
        checkout,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "var", "bench", "docs", ".env", "*.sqlite3*", "__pycache__"
        ),
    )
    (checkout / ".env").write_text(env_text)
    return checkout


def manage_in(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    # Only PATH: nothing of the test run's own configuration (DJANGO_SETTINGS_MODULE,
    # DATABASE_URL …) leaks in; what the command sees comes from the copied .env.
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=checkout,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def with_required_keys(env_text: str) -> str:
    """.env.example with what it marks REQUIRED filled in, as its instructions say."""
    env_text, found = re.subn(
        r"(?m)^SECRET_KEY=$", "SECRET_KEY=" + "not-secret-only-for-this-test-" * 3, env_text
    )
    assert found == 1
    env_text, found = re.subn(
        r"(?m)^WEBHOOKHUB_ENCRYPTION_KEY=$",
        "WEBHOOKHUB_ENCRYPTION_KEY=" + Fernet.generate_key().decode(),
        env_text,
    )
    assert found == 1
    return env_text


def test_env_example_copied_to_dot_env_runs_every_command_on_embedded_sqlite(tmp_path):
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"(?m)^DATABASE_URL=$", example), "the case this test is about"
    checkout = checkout_with_env(tmp_path, with_required_keys(example))

    check = manage_in(checkout, "check")
    assert check.returncode == 0, check.stderr  # was: KeyError: 'ENGINE'
    plan = manage_in(checkout, "showmigrations", "--plan")
    assert plan.returncode == 0, plan.stderr
    assert "deliveries.0001_initial" in plan.stdout
    engine = manage_in(
        checkout,
        "shell",
        "-v0",
        "-c",
        "from django.conf import settings; db = settings.DATABASES['default'];"
        "print(db['ENGINE'], db['NAME'])",
    )
    assert engine.returncode == 0, engine.stderr
    assert engine.stdout.split() == [
        "django_prometheus.db.backends.sqlite3",
        str(checkout / "db.sqlite3"),
    ]


def test_every_optional_variable_left_empty_means_its_default(tmp_path):
    """`NAME=` for every variable .env.example documents (ints, floats, bools, lists, URLs,
    the log format …): each one gets its default instead of failing to parse."""
    example = (ROOT / ".env.example").read_text()
    emptied = re.sub(r"(?m)^([A-Z][A-Z0-9_]*)=.*$", r"\1=", example)
    assert emptied.count("=\n") >= 50
    checkout = checkout_with_env(tmp_path, with_required_keys(emptied))

    result = manage_in(
        checkout,
        "shell",
        "-v0",
        "-c",
        "from django.conf import settings as s; print(s.DATABASES['default']['ENGINE'],"
        " s.WEB_TIMEOUT, s.EMAIL_PORT, s.LOG_FORMAT, s.ALLOWED_HOSTS, s.REDIS_URL == '',"
        " s.Q_CLUSTER['workers'], s.WEBHOOKHUB_TEST_WAIT_SECONDS, s.LANGUAGE_CODE)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django_prometheus.db.backends.sqlite3",
        "30",
        "25",
        "json",
        "['127.0.0.1',",
        "'localhost']",
        "True",
        "4",
        "1.5",
        "en",
    ]
    check = manage_in(checkout, "check")
    assert check.returncode == 0, check.stderr


# --- "Tests are not retried" (issue 14, point 6) -------------------------------------------

# Past every delay of the default schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), a
# circuit's probe cooldowns and the stale-lease sweep, then days later.
LATER = [
    timedelta(seconds=10),
    timedelta(minutes=6),
    timedelta(minutes=40),
    timedelta(hours=3),
    timedelta(hours=9),
    timedelta(hours=20),
    timedelta(hours=31),
    timedelta(days=3),
    timedelta(days=8),
]


def run_the_workers_for_days(start) -> None:
    """What a running cluster does over the next days: the dispatcher finds what is due,
    the workers send it."""
    run_queue()
    for offset in LATER:
        with time_machine.travel(start + offset):
            dispatch_due()
            run_queue()


FAILURES = {
    "HTTP 500": Response(500, b"broken"),
    "503 with Retry-After": Response(503, b"busy", headers={"Retry-After": "30"}),
    "429 with Retry-After": Response(429, b"slow down", headers={"Retry-After": "5"}),
    "connection dropped": Response(drop=True),
    "timeout": Response(200, delay=2.5),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_a_failed_test_event_reaches_the_partner_once_and_is_dead(event_types, receiver, failure):
    endpoint = make_endpoint(url=receiver.url_for("/hook"), timeout_seconds=1)
    receiver.default = failure
    start = timezone.now()
    delivery = endpoint_test_queue(endpoint, by="admin:sam")  # what the admin and API call

    run_the_workers_for_days(start)

    assert len(receiver.requests) == 1, [r.started_at for r in receiver.requests]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DEAD and delivery.next_attempt_at is None
    assert delivery.attempt_count == 1 and delivery.attempts.get().trigger == "test"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["recover", "retry now", "replay"])
def test_a_failed_test_event_is_not_retried_after_recover_retry_or_replay(
    event_types, receiver, action
):
    endpoint = make_endpoint(url=receiver.url_for("/hook"))
    receiver.default = Response(500, b"broken")
    start = timezone.now()
    delivery = endpoint_test_queue(endpoint, by="admin:sam")
    run_queue()
    assert len(receiver.requests) == 1
    # Support, later: on the endpoint's page ("Recover failed deliveries…"), on the
    # deliveries list (select all failed, "Retry now"), on the event's page ("Replay").
    if action == "recover":
        endpoint_recover(endpoint, since=start - timedelta(minutes=1), by="admin:sam")
    elif action == "retry now":
        deliveries_retry_now(endpoint.deliveries.all(), by="admin:sam")
    else:
        event_replay(delivery.event, endpoint=endpoint, by="admin:sam")

    run_the_workers_for_days(start)

    # At most the one send support asked for, and then no retries of a test event.
    assert len(receiver.requests) <= 2, f"{len(receiver.requests)} calls to the partner"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DEAD and delivery.next_attempt_at is None
