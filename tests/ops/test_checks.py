"""webhookhub's system checks (`manage.py check [--deploy]`), the Procfile and .env.example."""

import re
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from webhookhub import checks

ROOT = Path(__file__).resolve().parents[2]
VALID_KEY = "dGVzdC1vbmx5LWtleS10ZXN0LW9ubHkta2V5LTEyMzQ="
CLOSED_PORT_REDIS = "redis://:hunter2@127.0.0.1:1/0"


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def run_check(*args) -> str:
    """`manage.py check --tag webhookhub …`; the SystemCheckError's text if it fails, else ''."""
    try:
        call_command("check", "--tag", "webhookhub", *args, verbosity=0)
    except SystemCheckError as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ([], "WEBHOOKHUB_ENCRYPTION_KEY is not set"),
        (["not-a-key"], "WEBHOOKHUB_ENCRYPTION_KEY is not a Fernet key"),
        ([VALID_KEY, "short"], "WEBHOOKHUB_ENCRYPTION_KEY is not a Fernet key"),
    ],
)
def test_a_missing_or_invalid_encryption_key_is_an_error(settings, keys, words):
    settings.WEBHOOKHUB_ENCRYPTION_KEY = keys
    [error] = checks.check_encryption_key()
    assert error.id == "webhookhub.E001" and words in error.msg
    assert "Fernet keys, comma-separated, newest first" in error.hint
    assert "webhookhub.E001" in run_check()


def test_a_valid_encryption_key_passes(settings):
    settings.WEBHOOKHUB_ENCRYPTION_KEY = [VALID_KEY]
    assert checks.check_encryption_key() == []


def test_an_unusable_multiprocess_dir_is_an_error(monkeypatch, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    cases = {
        str(tmp_path / "gone"): "does not exist",
        str(a_file): "is not a directory",
        "/sys": "is not writable",  # sysfs refuses new files, even to root
    }
    for path, words in cases.items():
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", path)
        [error] = checks.check_multiprocess_dir()
        assert error.id == "webhookhub.E002"
        assert error.msg.startswith(f"PROMETHEUS_MULTIPROC_DIR={path} {words}")
        assert "webhookhub.E002" in run_check()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert checks.check_multiprocess_dir() == []
    assert list(tmp_path.iterdir()) == [a_file], "the write test leaves nothing behind"
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    assert checks.check_multiprocess_dir() == []


def test_one_q_worker_is_an_error(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "workers": 1}
    [error] = checks.check_q_workers()
    assert error.id == "webhookhub.E003"
    assert "WEBHOOKHUB_Q_WORKERS is 1" in error.msg and "no delivery is sent" in error.msg
    assert "WEBHOOKHUB_Q_WORKERS to 2 or more" in error.hint
    assert "webhookhub.E003" in run_check()
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "workers": 2}
    assert checks.check_q_workers() == []


@pytest.mark.parametrize(
    ("web_timeout", "wait", "expected"),
    [
        (30, 1.5, []),
        (30, 14.9, []),
        (30, 15, ["webhookhub.W001"]),
        (30, 29.9, ["webhookhub.W001"]),
        (30, 30, ["webhookhub.E004"]),
        (30, 60, ["webhookhub.E004"]),
        (0, 60, []),  # gunicorn --timeout 0: workers are never killed
    ],
)
def test_the_test_send_wait_stays_well_under_the_web_timeout(settings, web_timeout, wait, expected):
    settings.WEB_TIMEOUT = web_timeout
    settings.WEBHOOKHUB_TEST_WAIT_SECONDS = wait
    found = checks.check_test_wait()
    assert ids(found) == expected
    for message in found:
        assert f"WEB_TIMEOUT ({web_timeout})" in message.msg
        assert "Lower WEBHOOKHUB_TEST_WAIT_SECONDS" in message.hint


def test_the_test_send_wait_defaults_to_one_and_a_half_seconds(settings):
    if hasattr(settings, "WEBHOOKHUB_TEST_WAIT_SECONDS"):
        del settings.WEBHOOKHUB_TEST_WAIT_SECONDS
    settings.WEB_TIMEOUT = 3
    [warning] = checks.check_test_wait()
    assert warning.id == "webhookhub.W001" and "(1.5)" in warning.msg


def test_invalid_metrics_allowed_ips_are_an_error(settings):
    settings.WEBHOOKHUB_METRICS_ALLOWED_IPS = ["10.0.0.0/8", "2001:db8::/32", "10.0.0.300"]
    [error] = checks.check_metrics_allowed_ips()
    assert error.id == "webhookhub.E005" and "'10.0.0.300'" in error.msg
    assert "10.0.0.0/8" not in error.msg
    settings.WEBHOOKHUB_METRICS_ALLOWED_IPS = ["10.0.0.0/8", "192.0.2.7", "::1"]
    assert checks.check_metrics_allowed_ips() == []


def test_unreachable_redis_is_reported_by_check_deploy_only(settings):
    settings.REDIS_URL = CLOSED_PORT_REDIS
    started = time.monotonic()
    [error] = checks.check_redis()
    assert time.monotonic() - started < checks.REDIS_TIMEOUT + 1
    assert error.id == "webhookhub.E006"
    assert "Redis at REDIS_URL (redis://127.0.0.1:1/0) does not answer" in error.msg
    assert "hunter2" not in error.msg, "the password is not shown"
    assert "Leave REDIS_URL empty" in error.hint
    assert run_check() == "", "plain `check` stays offline"
    assert "webhookhub.E006" in run_check("--deploy")


def test_reachable_redis_and_no_redis_pass(settings):
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/11").ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    settings.REDIS_URL = "redis://127.0.0.1:6379/11"
    assert checks.check_redis() == []
    settings.REDIS_URL = ""
    assert checks.check_redis() == []


def test_the_test_settings_pass_every_check():
    assert run_check("--deploy") == ""


def test_the_procfile_gives_gunicorn_the_web_timeout():
    procfile = (ROOT / "Procfile").read_text()
    [web] = [line for line in procfile.splitlines() if line.startswith("web:")]
    assert "--timeout ${WEB_TIMEOUT:-30}" in web
    assert "--graceful-timeout ${WEB_TIMEOUT:-30}" in web


def test_env_example_documents_every_variable():
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    settings_text = (ROOT / "webhookhub" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]*)"', settings_text))
    read |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / "Procfile").read_text()))
    assert {"WEB_TIMEOUT", "WEBHOOKHUB_METRICS_TOKEN", "DATABASE_URL"} <= read
    assert read - documented == set()


def test_qcluster_refuses_to_start_with_one_worker():
    from tests.ops.conftest import manage

    result = manage("qcluster", env={"WEBHOOKHUB_Q_WORKERS": "1"}, timeout=60)
    assert result.returncode != 0
    assert "webhookhub.E003" in result.stderr and "WEBHOOKHUB_Q_WORKERS is 1" in result.stderr
