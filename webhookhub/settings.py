"""Settings, read from the environment only (SPEC §7); `.env` in the project root is loaded.

With nothing configured the service runs embedded: SQLite in the project directory and
django-q2's ORM broker. `DATABASE_URL` switches to PostgreSQL, `REDIS_URL` to the Redis
broker. `.env.example` documents every variable.
"""

import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent


class Env(environ.Env):
    """django-environ's reader, where an empty value means unset: `DATABASE_URL=` (as
    .env.example leaves every optional variable) gets the default, the embedded SQLite
    database, instead of an engine-less configuration (`KeyError: 'ENGINE'`); `WEB_TIMEOUT=`
    gets 30 instead of failing on `int('')`."""

    def get_value(self, var, cast=None, default=environ.Env.NOTSET, parse_default=False):
        if default is not self.NOTSET and self.ENVIRON.get(f"{self.prefix}{var}") == "":
            if parse_default and default is not None:
                return self.parse_value(default, cast)
            return default
        return super().get_value(var, cast=cast, default=default, parse_default=parse_default)


env = Env()
if not os.environ.get("SECRET_KEY") and not os.environ.get("DATABASE_URL"):
    # No configuration at all (a fresh checkout, embedded SQLite): write the local .env
    # `make run` would write, so every process of this checkout shares the generated
    # keys. A deployment (DATABASE_URL set) without SECRET_KEY still fails loudly below.
    from webhookhub.bootstrap import write_local_env

    write_local_env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
if os.environ.get("PROMETHEUS_MULTIPROC_DIR", None) == "":
    # An empty value (e.g. copied from .env.example) would make prometheus_client write
    # its per-process files into the working directory: treat it as unset.
    del os.environ["PROMETHEUS_MULTIPROC_DIR"]

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "SECRET_KEY is not set: set it in the environment or in .env (see .env.example)."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Seconds a gunicorn worker may spend on one request before it is killed; the Procfile
# passes it (--timeout, --graceful-timeout) and `check` compares waits in a request with it.
WEB_TIMEOUT = env.int("WEB_TIMEOUT", default=30)

INSTALLED_APPS = [
    "webhookhub.apps.WebhookhubAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "endpoints",
    "events",
    "deliveries",  # before django_q: its `qcluster` command is the one that runs
    "django_q",
    "audit",
    "console",  # the support console: the admin over the three apps above
    "portal",  # the partner portal: partners' own screens over the same services
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
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
# [metrics] django-prometheus's database metrics (queries, durations, errors, connections):
# the same backend with counting cursors. Compare ENGINE with `.endswith(".sqlite3")`.
DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace(
    "django.db.backends.", "django_prometheus.db.backends.", 1
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Korean and English (SPEC §8). The browser's Accept-Language picks one of them
# (LocaleMiddleware); WEBHOOKHUB_DEFAULT_LANGUAGE is used when it names neither.
LANGUAGES = [("ko", "한국어"), ("en", "English")]
LANGUAGE_CODE = env.str("WEBHOOKHUB_DEFAULT_LANGUAGE", default="en")
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "webhookhub" / "static"]  # the dashboard's script and styles
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
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The covering index of delivery attempts (INCLUDE columns) is a PostgreSQL
    # optimisation; SQLite builds the plain index instead.
    SILENCED_SYSTEM_CHECKS.append("models.W040")

# --- Mail (failure notices) ------------------------------------------------------------
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
# Seconds an SMTP server may take: notices are sent by the delivering workers (after the
# state they report is committed), and a hanging server must not hold a drain past its
# lease (10 s).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=5)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="webhookhub@localhost")
ADMINS = [("Staff", addr) for addr in env.list("WEBHOOKHUB_STAFF_EMAILS", default=[])]

# --- webhookhub ------------------------------------------------------------------------
# Fernet keys (urlsafe base64, 32 bytes), newest first: older keys still decrypt, so a
# key can be rotated by prepending a new one (docs/operations.md).
WEBHOOKHUB_ENCRYPTION_KEY = env.list("WEBHOOKHUB_ENCRYPTION_KEY", default=[])
WEBHOOKHUB_ALLOW_PRIVATE_URLS = env.bool("WEBHOOKHUB_ALLOW_PRIVATE_URLS", default=False)
WEBHOOKHUB_REQUIRE_HTTPS = env.bool("WEBHOOKHUB_REQUIRE_HTTPS", default=False)
# Endpoint verification: a new endpoint, or one whose URL changed, is sent a signed
# `webhookhub.endpoint.verification` challenge and gets no deliveries (they are held)
# until it answers 2xx with {"challenge": "<value>"} or the partner pastes the value.
WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION = env.bool(
    "WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION", default=False
)
WEBHOOKHUB_MAX_PAYLOAD_BYTES = env.int("WEBHOOKHUB_MAX_PAYLOAD_BYTES", default=256 * 1024)
# Retention (`manage.py prune_events` without --older-than), in days; empty: that class
# is kept forever. Succeeded: every delivery succeeded (or there was none); failed: a
# delivery is dead or cancelled. Events with a delivery still under way are always kept.
WEBHOOKHUB_RETENTION_DAYS_SUCCEEDED = env.str("WEBHOOKHUB_RETENTION_DAYS_SUCCEEDED", default="")
WEBHOOKHUB_RETENTION_DAYS_FAILED = env.str("WEBHOOKHUB_RETENTION_DAYS_FAILED", default="")
# Seconds each process keeps publish()'s lookups (event types, partners, subscriptions
# with compiled filters) before reading them again; edits made in the same process apply
# at once. 0: read them for every event.
WEBHOOKHUB_ROUTING_CACHE_SECONDS = env.float("WEBHOOKHUB_ROUTING_CACHE_SECONDS", default=2.0)
# How long POST /api/v1/endpoints/{id}/test/ and the admin's "Send test event" wait in
# the web request for the worker's result before answering 202 / "waiting" (seconds; well
# under the web timeout: the request itself is always sent by a worker).
WEBHOOKHUB_TEST_WAIT_SECONDS = env.float("WEBHOOKHUB_TEST_WAIT_SECONDS", default=1.5)
# The HTTP requests one worker process sends at once (its thread pool), over all the
# endpoints it drains; each endpoint also stays within its own max_in_flight.
WEBHOOKHUB_SEND_CONCURRENCY = env.int("WEBHOOKHUB_SEND_CONCURRENCY", default=32)
# A drain task takes this many endpoints (a wide fan-out is shared by several workers),
# runs at most this long before giving its worker back (the rest is woken again), and
# when an endpoint has nothing due waits this long for more unless other tasks wait.
WEBHOOKHUB_DRAIN_ENDPOINTS_PER_TASK = env.int("WEBHOOKHUB_DRAIN_ENDPOINTS_PER_TASK", default=4)
WEBHOOKHUB_DRAIN_SECONDS = env.float("WEBHOOKHUB_DRAIN_SECONDS", default=20.0)
WEBHOOKHUB_DRAIN_LINGER_SECONDS = env.float("WEBHOOKHUB_DRAIN_LINGER_SECONDS", default=0.2)
# A claim lasts the endpoint's timeout plus its connect timeout plus this margin; a
# worker that dies mid-request leaves a lease that expires this long after its timeout.
WEBHOOKHUB_LEASE_MARGIN_SECONDS = env.int("WEBHOOKHUB_LEASE_MARGIN_SECONDS", default=15)
# How long the dispatcher waits for a drain it queued to start before queuing another
# (the task was lost with the broker).
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

# Notifiers hearing webhookhub.signals (docs/extending.md): dotted paths, comma-separated.
WEBHOOKHUB_NOTIFIERS = env.list(
    "WEBHOOKHUB_NOTIFIERS", default=["webhookhub.notifiers.EmailNotifier"]
)
# The Slack-compatible incoming webhook webhookhub.notifiers.SlackNotifier posts to.
WEBHOOKHUB_SLACK_WEBHOOK_URL = env.str("WEBHOOKHUB_SLACK_WEBHOOK_URL", default="")

# --- Partner portal (docs/portal.md) ---------------------------------------------------
# Minutes a sign-in link stays valid (single use); a portal session ends after this many
# idle minutes, and in any case this many hours after sign-in.
WEBHOOKHUB_PORTAL_LINK_MINUTES = env.int("WEBHOOKHUB_PORTAL_LINK_MINUTES", default=30)
WEBHOOKHUB_PORTAL_IDLE_MINUTES = env.int("WEBHOOKHUB_PORTAL_IDLE_MINUTES", default=60)
WEBHOOKHUB_PORTAL_MAX_HOURS = env.int("WEBHOOKHUB_PORTAL_MAX_HOURS", default=12)
# Origins allowed to frame the portal (CSP frame-ancestors), e.g. https://app.example.com;
# empty: the portal refuses to be framed.
WEBHOOKHUB_PORTAL_FRAME_ANCESTORS = env.list("WEBHOOKHUB_PORTAL_FRAME_ANCESTORS", default=[])
# The scheme and host sign-in links start with when no request tells it (the command);
# empty: the request's own (API, admin), else http://127.0.0.1:8000.
WEBHOOKHUB_PORTAL_BASE_URL = env.str("WEBHOOKHUB_PORTAL_BASE_URL", default="")

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

# --- REST API (docs/api.md) ---------------------------------------------------------
# Bearer ApiTokens, JSON only, cursor pagination, errors as {"detail", "errors"}.
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["webhookhub.api.parsers.LimitedJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["webhookhub.api.authentication.ApiTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["webhookhub.api.permissions.HasRole"],
    "DEFAULT_THROTTLE_CLASSES": ["webhookhub.api.throttling.TokenRateThrottle"],
    # Per token and scope: N/s, N/min, N/hour or N/day.
    "DEFAULT_THROTTLE_RATES": {
        "publish": env.str("WEBHOOKHUB_API_RATE_PUBLISH", default="1000/s"),
        "read": env.str("WEBHOOKHUB_API_RATE_READ", default="1200/min"),
        "write": env.str("WEBHOOKHUB_API_RATE_WRITE", default="300/min"),
    },
    "DEFAULT_PAGINATION_CLASS": "webhookhub.api.pagination.CreatedCursorPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "webhookhub.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "webhookhub.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
# A request body larger than this is refused with 413 before parsing; it applies to
# POST /api/v1/events/batch/ (single requests use WEBHOOKHUB_MAX_PAYLOAD_BYTES).
WEBHOOKHUB_API_MAX_BATCH_BYTES = env.int("WEBHOOKHUB_API_MAX_BATCH_BYTES", default=1024 * 1024)
WEBHOOKHUB_API_MAX_BATCH_EVENTS = env.int("WEBHOOKHUB_API_MAX_BATCH_EVENTS", default=100)
# Seconds each web process remembers a valid API token (a revocation elsewhere applies
# within this time; in the process that revoked it, at once). 0: look it up every time.
WEBHOOKHUB_API_TOKEN_CACHE_SECONDS = env.float("WEBHOOKHUB_API_TOKEN_CACHE_SECONDS", default=5.0)
# No request body Django reads (the admin's forms included) is larger than the largest the
# API takes; API views refuse a larger Content-Length themselves, unread, with a 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(WEBHOOKHUB_API_MAX_BATCH_BYTES, WEBHOOKHUB_MAX_PAYLOAD_BYTES)
# Throttle counters: shared in Redis when REDIS_URL is set, else per process.
WEBHOOKHUB_API_THROTTLE_CACHE = "api-throttle"
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    WEBHOOKHUB_API_THROTTLE_CACHE: (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "webhookhub",
        }
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "api-throttle",
        }
    ),
    # One cache for every web and worker process: the dashboard figures a scheduled
    # task computes. Redis when configured, a database table otherwise.
    "shared": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "webhookhub",
        }
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "webhookhub_cache",
        }
    ),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "webhookhub API",
    "DESCRIPTION": (
        "Partners manage their webhook endpoints and read their events, deliveries and "
        "attempts; the company's services publish events. Authenticate with "
        "`Authorization: Bearer <token>`. Every 4xx has the body "
        '`{"detail": "...", "errors": {"field": ["message"]}}`. Guide: docs/api.md.'
    ),
    "VERSION": "1",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "webhookhub.api.schema.add_components",
    ],
    "ENUM_NAME_OVERRIDES": {
        "DeliveryStatusEnum": "deliveries.models.DeliveryStatus",
        "TriggerEnum": "deliveries.models.Trigger",
    },
}

# --- Logging (docs/operations.md#logs) ------------------------------------------------
# JSON lines on stdout in production (extras such as event_id, delivery_id, endpoint_id,
# attempt, outcome and duration_ms become keys); readable lines for `make run`. Both
# formatters scrub anything that looks like a secret or a bearer token.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "webhookhub.logs.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {
            "()": "webhookhub.logs.RedactingJsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
            "rename_fields": {
                "asctime": "time",
                "levelname": "level",
                "name": "logger",
                "process": "pid",
            },
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": LOG_FORMAT,
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # django-q2 logs every task at INFO; Q_LOG_LEVEL keeps it to what matters.
        "django-q": {"level": env.str("Q_LOG_LEVEL", default="WARNING")},
    },
}

# --- Metrics (docs/operations.md#metrics) ---------------------------------------------
# Counters (events published, attempts, durations) are written by whichever process
# counts them — gunicorn workers, qcluster workers, commands — into prometheus_client's
# multiprocess files in this directory, and /metrics adds them up. Every process on a
# machine must get the same value *in its environment* before it starts (prometheus_client
# reads it at import; a `.env` file works because settings load first). Empty: each
# process counts for itself only (fine for tests, wrong for web + worker).
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR:
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
# State gauges (backlog, dead letters, circuits, …) are read from the database when
# /metrics is scraped and reused for this many seconds within a web process.
WEBHOOKHUB_METRICS_CACHE_SECONDS = env.float("WEBHOOKHUB_METRICS_CACHE_SECONDS", default=5.0)
# /metrics is open unless one of these is set (both may be): a bearer token it requires
# (`Authorization: Bearer <token>`, else 401), and/or the client addresses (REMOTE_ADDR;
# comma-separated IPs or CIDRs, e.g. 10.0.0.0/8) it answers (else 403).
WEBHOOKHUB_METRICS_TOKEN = env.str("WEBHOOKHUB_METRICS_TOKEN", default="")
WEBHOOKHUB_METRICS_ALLOWED_IPS = env.list("WEBHOOKHUB_METRICS_ALLOWED_IPS", default=[])
# /readyz fails when no dispatcher loop (it runs inside a qcluster) has renewed its lease
# for this long: no cluster is running, or every worker is stuck.
WEBHOOKHUB_READY_HEARTBEAT_SECONDS = env.int("WEBHOOKHUB_READY_HEARTBEAT_SECONDS", default=120)
