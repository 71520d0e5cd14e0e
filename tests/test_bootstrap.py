"""A fresh checkout with no configuration gets a local .env with generated keys, once."""

import stat

from cryptography.fernet import Fernet

from webhookhub import bootstrap


def test_local_env_is_written_once_with_fresh_keys(tmp_path, monkeypatch):
    monkeypatch.setattr(bootstrap, "BASE_DIR", tmp_path)
    assert bootstrap.write_local_env() is True
    env_file = tmp_path / ".env"
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    assert len(values["SECRET_KEY"]) >= 50
    Fernet(values["WEBHOOKHUB_ENCRYPTION_KEY"])  # a valid key
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    first = env_file.read_text()
    assert bootstrap.write_local_env() is False
    assert env_file.read_text() == first, "never overwritten"


def test_manage_py_check_runs_on_a_bare_checkout(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    checkout = tmp_path / "checkout"
    shutil.copytree(
        root,
        checkout,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "var", "bench", ".env", "*.sqlite3", "__pycache__", "docs"
        ),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=checkout,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (checkout / ".env").exists()

    # A deployment (DATABASE_URL set) that forgot SECRET_KEY fails loudly instead.
    (checkout / ".env").unlink()
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=checkout,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgres://nobody@127.0.0.1:1/x"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "SECRET_KEY is not set" in result.stderr
    assert not (checkout / ".env").exists()
