"""Settings, read from the environment only (SPEC §7); `.env` in the project root is loaded.

With nothing configured the service runs embedded: SQLite in the project directory and
django-q2's ORM broker. `DATABASE_URL` switches to PostgreSQL, `REDIS_URL` to the Redis
broker. `.env.example` documents every variable.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Run `make run` once (it writes a local .env) or set it "
        "in the environment; see .env.example."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "webhookhub.apps.WebhookhubAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "django_q",
    "endpoints",
    "events",
    "deliveries",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "webhookhub.urls"
WSGI_APPLICATION = "webhookhub.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "webhookhub" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web process and the workers share the file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if env.str("TEST_DATABASE_NAME", default=""):
    DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

FORMS_URLFIELD_ASSUME_HTTPS = True  # Django 6 behaviour now: a bare host means https

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Security (production defaults; `make run` sets DEBUG=true locally) -----------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# HSTS preload is a commitment that is hard to undo; it is the operator's opt-in
# (SECURE_HSTS_PRELOAD=true), so `check --deploy` does not nag about it.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# --- Mail (failure notices) ------------------------------------------------------------
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="webhookhub@localhost")
ADMINS = [("Staff", addr) for addr in env.list("WEBHOOKHUB_STAFF_EMAILS", default=[])]

# --- webhookhub ------------------------------------------------------------------------
# Fernet keys (urlsafe base64, 32 bytes), newest first: older keys still decrypt, so a
# key can be rotated by prepending a new one (docs/operations.md).
WEBHOOKHUB_ENCRYPTION_KEY = env.list("WEBHOOKHUB_ENCRYPTION_KEY", default=[])
WEBHOOKHUB_ALLOW_PRIVATE_URLS = env.bool("WEBHOOKHUB_ALLOW_PRIVATE_URLS", default=False)
WEBHOOKHUB_REQUIRE_HTTPS = env.bool("WEBHOOKHUB_REQUIRE_HTTPS", default=False)
WEBHOOKHUB_MAX_PAYLOAD_BYTES = env.int("WEBHOOKHUB_MAX_PAYLOAD_BYTES", default=256 * 1024)
# Deliveries handed to one django-q2 task, and the HTTP requests one task sends at once.
# Keep them equal: a batch then goes out in one wave, well inside its leases.
WEBHOOKHUB_DELIVERY_BATCH_SIZE = env.int("WEBHOOKHUB_DELIVERY_BATCH_SIZE", default=32)
WEBHOOKHUB_SEND_CONCURRENCY = env.int("WEBHOOKHUB_SEND_CONCURRENCY", default=32)
# A claim lasts the endpoint's timeout plus its connect timeout plus this margin; a
# worker that dies mid-request leaves a lease that expires this long after its timeout.
WEBHOOKHUB_LEASE_MARGIN_SECONDS = env.int("WEBHOOKHUB_LEASE_MARGIN_SECONDS", default=15)
# How long a delivery the dispatcher queued stays reserved for that task to start.
WEBHOOKHUB_DISPATCH_RESERVATION_SECONDS = env.int(
    "WEBHOOKHUB_DISPATCH_RESERVATION_SECONDS", default=30
)

# Circuit breaker: open after this many failed attempts in a row; first probe after the
# cooldown, doubling per re-open up to the max; auto-disable after failing this long.
WEBHOOKHUB_CIRCUIT_FAILURE_THRESHOLD = env.int("WEBHOOKHUB_CIRCUIT_FAILURE_THRESHOLD", default=5)
WEBHOOKHUB_CIRCUIT_COOLDOWN_SECONDS = env.int("WEBHOOKHUB_CIRCUIT_COOLDOWN_SECONDS", default=60)
WEBHOOKHUB_CIRCUIT_MAX_COOLDOWN_SECONDS = env.int(
    "WEBHOOKHUB_CIRCUIT_MAX_COOLDOWN_SECONDS", default=3600
)
WEBHOOKHUB_AUTO_DISABLE_AFTER_HOURS = env.float("WEBHOOKHUB_AUTO_DISABLE_AFTER_HOURS", default=120)

# --- django-q2 -------------------------------------------------------------------------
# Our own retries live in the database (deliveries.next_attempt_at), so django-q2 never
# retries a task itself: max_attempts=1. A task's timeout is above the longest HTTP
# timeout times a batch's waves; `retry` must exceed `timeout`.
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER = {
    "name": "webhookhub",
    "workers": env.int("WEBHOOKHUB_Q_WORKERS", default=4),
    "timeout": 300,
    "retry": 360,
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": 100,
    "recycle": 500,
    "max_rss": 120 * 1024,  # kB: a worker is replaced after a task once past 120 MB
    "queue_limit": 50,
    "catch_up": False,
    "poll": 0.05,
    "label": "Task queue",
    "log_level": env.str("Q_LOG_LEVEL", default="WARNING"),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
}

LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
