"""Environment shared by load.py and pages.py: settings from the environment, as in
production, pointed at the bench database.

The Fernet key that encrypts the endpoints' signing secrets is taken from
WEBHOOKHUB_ENCRYPTION_KEY if set, else from bench/admin/.fernet_key (written by
load.py on first use; .gitignored). pages.py must use the key load.py used.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
KEY_FILE = HERE / ".fernet_key"
RESULTS = HERE / "results"

DB_NAME = os.environ.get("BENCH_ADMIN_DB", "webhookhub_bench_admin")
PG_URL = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
if not DB_NAME.startswith("webhookhub_bench_admin"):
    sys.exit("BENCH_ADMIN_DB must start with webhookhub_bench_admin")


def fernet_key(create: bool = False) -> str:
    key = os.environ.get("WEBHOOKHUB_ENCRYPTION_KEY", "").strip()
    if key:
        return key
    if KEY_FILE.exists():
        return KEY_FILE.read_text().strip()
    if not create:
        sys.exit(
            f"No Fernet key: run load.py first (it writes {KEY_FILE}) or set "
            "WEBHOOKHUB_ENCRYPTION_KEY to the key the loader used."
        )
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    KEY_FILE.write_text(key + "\n")
    KEY_FILE.chmod(0o600)
    return key


def database_url(name: str = DB_NAME) -> str:
    return f"{PG_URL}/{name}"


def settings_env(create_key: bool = False) -> dict:
    return {
        "DJANGO_SETTINGS_MODULE": "webhookhub.settings",
        "DATABASE_URL": database_url(),
        "SECRET_KEY": "x",
        "WEBHOOKHUB_ENCRYPTION_KEY": fernet_key(create=create_key),
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "testserver",
        "LOG_LEVEL": "WARNING",
        "Q_LOG_LEVEL": "WARNING",
        "REDIS_URL": "",
    }


def setup_django(create_key: bool = False) -> None:
    """Put the project on sys.path, set the environment, django.setup()."""
    os.environ.update(settings_env(create_key))
    os.chdir(ROOT)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
