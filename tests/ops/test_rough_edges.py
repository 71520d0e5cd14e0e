"""Rough edges a new operator hits first (issue 14, point 9): a `.env` copied from
`.env.example`, and test events that must never turn into retries."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

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
