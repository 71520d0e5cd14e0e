"""Settings for the test suite: the production settings plus fixed test-only keys.

The database comes from DATABASE_URL as usual (PostgreSQL in CI, SQLite otherwise).
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-not-secret-" + "x" * 40)
# A fixed Fernet key for tests only; never used outside the test suite.
os.environ.setdefault("WEBHOOKHUB_ENCRYPTION_KEY", "dGVzdC1vbmx5LWtleS10ZXN0LW9ubHkta2V5LTEyMzQ=")
os.environ.setdefault("WEBHOOKHUB_ALLOW_PRIVATE_URLS", "true")
os.environ.setdefault("LOG_FORMAT", "plain")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
# No worker runs inside most tests: a test send answers "queued" at once (tests that
# start a real qcluster and gunicorn set it themselves).
os.environ.setdefault("WEBHOOKHUB_TEST_WAIT_SECONDS", "0")
os.environ["REDIS_URL"] = os.environ.get("TEST_REDIS_URL", "")
# No tracing from the developer's shell (OTEL_* pointing at a collector): tests that
# trace install their own provider, or start a cluster with TEST_OTEL_TRACES_EXPORTER.
os.environ["OTEL_TRACES_EXPORTER"] = os.environ.get("TEST_OTEL_TRACES_EXPORTER", "none")

from webhookhub.settings import *  # noqa: F403
from webhookhub.settings import BASE_DIR, CACHES, DATABASES

if DATABASES["default"]["ENGINE"].endswith(".sqlite3"):
    # A file, not :memory:, so that qcluster subprocesses in end-to-end tests share it.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("TEST_SQLITE_PATH") or str(BASE_DIR / "var" / "test.sqlite3")
    }
(BASE_DIR / "var" / "static").mkdir(parents=True, exist_ok=True)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
# Tests share one process per database (the live server runs in a thread); a database
# cache table is not flushed between transactional tests, so use memory and clear it.
CACHES["shared"] = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "shared",
}
