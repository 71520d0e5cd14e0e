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


def test_make_run_says_how_to_reset_the_admin_password():
    """The password is printed once (first run); every run says how to set a new one."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    plan = subprocess.run(
        ["make", "--dry-run", "run"],
        cwd=root,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    after = lines[next(i for i, line in enumerate(lines) if "ensure_admin" in line) + 1]
    assert after.startswith("echo ") and "changepassword" in after, after
    for username, expected in [(None, "admin"), ("sam", "sam")]:
        printed = subprocess.run(
            ["sh", "-c", after],
            env={"PATH": "/usr/bin:/bin"}
            | ({"WEBHOOKHUB_ADMIN_USERNAME": username} if username else {}),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert printed.strip().endswith(f"manage.py changepassword {expected}"), printed
