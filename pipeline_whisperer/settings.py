"""Settings for every shape of the service, read from the environment only.

The embedded default (no variables set but `DJANGO_DEBUG=1`) runs on a SQLite file and a
local-memory cache; production sets `DATABASE_URL`, `REDIS_URL` and friends. Every variable
is documented once in docs/CONFIGURATION.md and `.env.production.example`.
"""

import ipaddress
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from pipeline_whisperer import __version__
from pipeline_whisperer.env import (
    SettingsError,
    check_redis_url,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_prefixed,
    env_str,
    parse_database_url,
)
from pipeline_whisperer.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

# ---------------------------------------------------------------------------------------
# Core
# ---------------------------------------------------------------------------------------
DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise SettingsError("DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off")
    SECRET_KEY = "insecure-development-key-only-for-DJANGO_DEBUG-1"  # noqa: S105  # nosec B105  # debug only
elif len(SECRET_KEY) < 50 and not DEBUG:
    raise SettingsError("DJANGO_SECRET_KEY must be at least 50 characters when DJANGO_DEBUG is off")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # Without autodiscovery at start-up (~0.13 s of every management command): see AdminConfig.
    "pipeline_whisperer.apps.AdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Not "health_check": health uses its checks and view only (our probes answer JSON, never its
    # template or command), and listing it would import every check at start-up (~0.09 s).
    "corsheaders",  # edge guards: CORS for /api/ from CORS_ALLOWED_ORIGINS
    "csp",
    "django_ratelimit",
    "axes",  # admin login lockouts (section "Login lockouts" below)
    "anymail",  # email providers: sending, tracking and inbound webhooks (section "Email")
    "pipeline_whisperer",
    "leads",
    "health",
    "ops",
]

MIDDLEWARE = [
    # django-prometheus: Before stays first and After last, so their timings cover the rest.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "pipeline_whisperer.middleware.CorrelationIdMiddleware",
    "pipeline_whisperer.middleware.RequestPathLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Edge guards: CORS answers preflights before anything counts them; gzip sits above every
    # middleware that writes bodies; rate limits come before the body limit and DRF's auth.
    "corsheaders.middleware.CorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "pipeline_whisperer.compression.GZipAbove1KBMiddleware",
    "pipeline_whisperer.csp.ConstantPolicyCSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "pipeline_whisperer.ratelimit.RateLimitMiddleware",
    "pipeline_whisperer.middleware.RequestBodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Turns a login refused by a lockout into the lockout page (429); must follow authentication.
    "axes.middleware.AxesMiddleware",
    "pipeline_whisperer.middleware.LazyMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "pipeline_whisperer.request_metrics.RequestMetricsAfterMiddleware",
]

ROOT_URLCONF = "pipeline_whisperer.urls"
WSGI_APPLICATION = "pipeline_whisperer.wsgi.application"
ASGI_APPLICATION = "pipeline_whisperer.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# ---------------------------------------------------------------------------------------
# Database: SQLite file by default, PostgreSQL with psycopg's pool when DATABASE_URL says so
# ---------------------------------------------------------------------------------------
_database = parse_database_url(
    "DATABASE_URL",
    env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'pipeline_whisperer.sqlite3'}"),
    base_dir=BASE_DIR,
)
DATABASES: dict[str, dict[str, Any]]  # django-stubs' type: entries mix strings, ints and dicts
if _database.engine == "django.db.backends.sqlite3":
    DATABASES = {
        "default": {
            "ENGINE": _database.engine,
            "NAME": _database.name,
            # WAL lets the web process read while a writer commits.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": _database.engine,
            "NAME": _database.name,
            "USER": _database.user,
            "PASSWORD": _database.password,
            "HOST": _database.host,
            "PORT": _database.port,
            # The pool replaces persistent connections; Django requires CONN_MAX_AGE = 0 with it.
            "CONN_MAX_AGE": 0,
            "OPTIONS": {
                **(_database.options or {}),
                "pool": {
                    "min_size": env_int("DB_POOL_MIN_SIZE", 1, minimum=0),
                    "max_size": env_int("DB_POOL_MAX_SIZE", 4, minimum=1),
                    "timeout": env_float("DB_POOL_TIMEOUT_SECONDS", 10.0),
                },
            },
        }
    }

# ---------------------------------------------------------------------------------------
# Cache: Redis when REDIS_URL is set, local memory otherwise
# ---------------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
CACHE_TTL_SECONDS = env_int("CACHE_TTL_SECONDS", 300, minimum=0)
# Cached reads (pipeline_whisperer.cache) fall back to the database when Redis fails: a short
# socket timeout bounds what a dead Redis costs a request, and the breaker stops asking it.
CACHE_SOCKET_TIMEOUT_SECONDS = env_float("CACHE_SOCKET_TIMEOUT_SECONDS", 0.5)
if CACHE_SOCKET_TIMEOUT_SECONDS <= 0:
    raise SettingsError(f"CACHE_SOCKET_TIMEOUT_SECONDS must be positive (got {CACHE_SOCKET_TIMEOUT_SECONDS})")
CACHE_BREAKER_FAILURES = env_int("CACHE_BREAKER_FAILURES", 3, minimum=1)
CACHE_BREAKER_RESET_SECONDS = env_float("CACHE_BREAKER_RESET_SECONDS", 10.0)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": check_redis_url("REDIS_URL", REDIS_URL),
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "pw"),
            "TIMEOUT": CACHE_TTL_SECONDS,
            # No IGNORE_EXCEPTIONS: readiness must see a dead Redis; cached reads catch errors themselves.
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": CACHE_SOCKET_TIMEOUT_SECONDS,
                "SOCKET_TIMEOUT": CACHE_SOCKET_TIMEOUT_SECONDS,
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "TIMEOUT": CACHE_TTL_SECONDS,
        }
    }

# ---------------------------------------------------------------------------------------
# Auth, i18n, static files
# ---------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Hashed names need the manifest that collectstatic writes; until it has run (development,
# tests) every {% static %} would fail, so files are named and served straight from the apps.
_STATIC_COLLECTED = STATIC_ROOT.exists()
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if _STATIC_COLLECTED and not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not _STATIC_COLLECTED
WHITENOISE_AUTOREFRESH = DEBUG

# ---------------------------------------------------------------------------------------
# Security: safe by default; DJANGO_DEBUG=1 relaxes what plain-HTTP development needs
# ---------------------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Probes talk plain HTTP to the pod; they must not be redirected.
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = not DEBUG
X_FRAME_OPTIONS = "DENY"
# Largest accepted request body; DRF reads the raw stream, so RequestBodyLimitMiddleware
# enforces this for the API too.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 5 * 1024 * 1024, minimum=1024)
# Longest request path (characters); a longer one gets 414 problem+json (RequestPathLimitMiddleware),
# well below gunicorn's request-line limit (deploy/gunicorn.conf.py) and nginx's 8 KB buffers.
MAX_REQUEST_PATH_LENGTH = env_int("MAX_REQUEST_PATH_LENGTH", 2048, minimum=256)

# ---------------------------------------------------------------------------------------
# Edge guards: CSP, Permissions-Policy, CORS (headers above come from SecurityMiddleware)
# ---------------------------------------------------------------------------------------
# Not CSP_REPORT_URI: django-csp 4 refuses its old setting names in the settings module.
_csp_report_uri = env_str("CSP_REPORT_URI")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        # No inline scripts: the API docs load their init script as a file (split view).
        "script-src": ["'self'"],
        # Swagger UI's page has a small <style> block and the admin sets a few style attributes.
        "style-src": ["'self'", "'unsafe-inline'"],
        # Swagger UI's stylesheet draws its icons as data: SVGs.
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "report-uri": _csp_report_uri or None,
    }
}
# Nothing here uses these browser features; a page that is ever injected cannot either.
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: []
    for feature in (
        "accelerometer",
        "autoplay",
        "browsing-topics",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "usb",
    )
}
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CORS_URLS_REGEX = r"^/api/"
CORS_ALLOW_HEADERS = ["accept", "content-type", "x-api-key", "x-request-id"]
CORS_EXPOSE_HEADERS = ["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-Request-ID"]

# ---------------------------------------------------------------------------------------
# Rate limits on /api/ (pipeline_whisperer/ratelimit.py), counted in the "ratelimit" cache
# ---------------------------------------------------------------------------------------
RATELIMIT_ENABLE = env_bool("RATELIMIT_ENABLE", True)
RATE_LIMIT_PER_MINUTE = env_int("RATE_LIMIT_PER_MINUTE", 60, minimum=1)
RATE_LIMIT_PER_HOUR = env_int("RATE_LIMIT_PER_HOUR", 1000, minimum=1)
RATE_LIMIT_FAIL_OPEN = env_bool("RATE_LIMIT_FAIL_OPEN", True)
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
RATELIMIT_USE_CACHE = "ratelimit"
if REDIS_URL:
    # Own alias with short timeouts: a hung Redis delays each API request by at most ~0.5 s.
    CACHES["ratelimit"] = {
        **CACHES["default"],
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    }
else:
    # Embedded shape: counters per process. django-ratelimit flags local memory as an error
    # (it is not shared between processes), which is what this shape accepts.
    CACHES["ratelimit"] = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ratelimit"}
    # axes.W001 says the same of the login lockout counters; this shape is one process, where
    # local memory is shared by every request it serves.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001", "axes.W001"]

# ---------------------------------------------------------------------------------------
# Login lockouts (django-axes; pipeline_whisperer/lockouts.py): failed logins are counted per
# username and client address in the default cache (Redis in production, so a lockout holds
# across workers and hosts); at LOGIN_FAILURE_LIMIT the pair is refused for LOGIN_LOCKOUT_MINUTES.
# ---------------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses a locked-out pair before the password is checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_CACHE = "default"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
# Attempts during a lockout neither count nor extend it, so the retry time the page promises holds.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True  # a good login from the pair forgets its earlier typos
# The address the API rate limits use: X-Forwarded-For only behind TRUSTED_PROXY_COUNT proxies.
AXES_CLIENT_IP_CALLABLE = "pipeline_whisperer.lockouts.login_client_address"
AXES_LOCKOUT_CALLABLE = "pipeline_whisperer.lockouts.lockout_response"
# Axes' admin pages show its database models, which the cache handler leaves empty; staff use
# /admin/lockouts/ instead.
AXES_ENABLE_ADMIN = False
# No "AXES: BEGIN" line at every start: commands run from cron must stay silent when they succeed.
AXES_VERBOSE = False

# ---------------------------------------------------------------------------------------
# REST API
# ---------------------------------------------------------------------------------------
API_PAGE_SIZE = env_int("API_PAGE_SIZE", 50, minimum=1)
API_MAX_PAGE_SIZE = env_int("API_MAX_PAGE_SIZE", 200, minimum=1)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "pipeline_whisperer.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["pipeline_whisperer.auth.HasApiAccess"],
    "DEFAULT_PARSER_CLASSES": ["pipeline_whisperer.api.BoundedJSONParser"],
    # orjson renders a 50-row list page about 12 times faster than DRF's JSONRenderer, with the
    # same JSON given these options (bench/json_render.py); the browsable API stays.
    "DEFAULT_RENDERER_CLASSES": [
        "drf_orjson_renderer.renderers.ORJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "ORJSON_RENDERER_OPTIONS": (orjson.OPT_UTC_Z, orjson.OPT_NON_STR_KEYS),
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "pipeline_whisperer.api.JsonFirstContentNegotiation",
    "DEFAULT_PAGINATION_CLASS": "pipeline_whisperer.api.BoundedPageNumberPagination",
    "PAGE_SIZE": API_PAGE_SIZE,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "pipeline_whisperer.api.StrictOrderingFilter",
    ],
    "EXCEPTION_HANDLER": "pipeline_whisperer.exceptions.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "pipeline_whisperer.schema.ProblemAutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Pipeline Whisperer API",
    "DESCRIPTION": "Lead ingest, scoring, bandit-driven outreach and feedback.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs need what the API needs: an API key or a staff session.
    "SERVE_PERMISSIONS": ["pipeline_whisperer.auth.HasApiAccess"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "PersonaEnum": "leads.models.Persona",
        "LeadStatusEnum": "leads.models.LeadStatus",
        "ExperimentStatusEnum": "leads.models.ExperimentStatus",
        "SuccessEventEnum": "leads.models.SuccessEvent",
        "OutreachStatusEnum": "leads.models.OutreachStatus",
        "SuppressionKindEnum": "leads.models.compliance.SuppressionKind",
        "CompanySizeEnum": "leads.models.CompanySize",
        "BudgetRangeEnum": "leads.models.BudgetRange",
    },
}

# ---------------------------------------------------------------------------------------
# Email (outreach)
# ---------------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT_SECONDS", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Pipeline Whisperer <outreach@localhost>")
# An email provider through django-anymail: EMAIL_BACKEND names its backend (for example
# anymail.backends.postmark.EmailBackend) and each ANYMAIL_<KEY> variable becomes ANYMAIL[KEY]
# (POSTMARK_SERVER_TOKEN, MAILGUN_API_KEY, ..., WEBHOOK_SECRET as "user:password").
ANYMAIL = env_prefixed("ANYMAIL_")
# Largest provider webhook body taken (SendGrid posts up to about 1,000 events a request);
# bodies over MAX_REQUEST_BODY_BYTES get 413 first, so the smaller of the two holds.
WEBHOOK_MAX_BODY_BYTES = env_int("WEBHOOK_MAX_BODY_BYTES", 5 * 1024 * 1024, minimum=1024)
# Who the mail is from, in every footer (CAN-SPAM: a postal address): required in production.
OUTREACH_ENABLED = env_bool("OUTREACH_ENABLED", True)
OUTREACH_SENDER_NAME = env_str("OUTREACH_SENDER_NAME", "The Pipeline Whisperer team" if DEBUG else "")
OUTREACH_POSTAL_ADDRESS = env_str("OUTREACH_POSTAL_ADDRESS", "1 Demo Street, Example City" if DEBUG else "")
# Where recipients reach us from the mail (the one-click unsubscribe URL): https in production.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000" if DEBUG else "").rstrip("/")
OUTREACH_UNSUBSCRIBE_MAILTO = env_str(
    "OUTREACH_UNSUBSCRIBE_MAILTO", "unsubscribe@" + (DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].rstrip(">") or "localhost")
)
if OUTREACH_ENABLED and not DEBUG:
    for _name, _value in (
        ("OUTREACH_SENDER_NAME", OUTREACH_SENDER_NAME),
        ("OUTREACH_POSTAL_ADDRESS", OUTREACH_POSTAL_ADDRESS),
        ("PUBLIC_BASE_URL", PUBLIC_BASE_URL),
    ):
        if not _value:
            raise SettingsError(f"{_name} is required when outreach is enabled and DJANGO_DEBUG is off")
    if not PUBLIC_BASE_URL.startswith("https://"):
        raise SettingsError(f"PUBLIC_BASE_URL must be an https:// URL when DJANGO_DEBUG is off (got {PUBLIC_BASE_URL})")

# ---------------------------------------------------------------------------------------
# The pipeline's business settings
# ---------------------------------------------------------------------------------------
OUTREACH_MIN_SCORE = env_float("OUTREACH_MIN_SCORE", 0.5)
if not 0.0 <= OUTREACH_MIN_SCORE <= 1.0:
    raise SettingsError(f"OUTREACH_MIN_SCORE must be between 0 and 1 (got {OUTREACH_MIN_SCORE})")
ATTRIBUTION_WINDOW_DAYS = env_int("ATTRIBUTION_WINDOW_DAYS", 14, minimum=1)
# One person, one conversation: no second mail to an address within this many days, and at most
# this many people of one company domain (free-mail domains are not companies).
OUTREACH_RECONTACT_DAYS = env_int("OUTREACH_RECONTACT_DAYS", 90, minimum=1)
OUTREACH_MAX_PER_COMPANY_DOMAIN = env_int("OUTREACH_MAX_PER_COMPANY_DOMAIN", 2, minimum=1)
# Pacing: days and hours in the recipient's zone (the embedded default keeps the window open, so
# the demo moves on any day), mail per recipient domain per hour, mail per day with a warm-up ramp.
OUTREACH_SEND_WINDOW = env_str("OUTREACH_SEND_WINDOW", "mon-sun 00:00-24:00" if DEBUG else "mon-fri 09:00-17:00")
OUTREACH_DEFAULT_TIME_ZONE = env_str("OUTREACH_DEFAULT_TIME_ZONE", "UTC")
OUTREACH_DOMAIN_HOURLY_CAP = env_int("OUTREACH_DOMAIN_HOURLY_CAP", 20, minimum=1)
OUTREACH_DAILY_CAP = env_int("OUTREACH_DAILY_CAP", 2000, minimum=1)
OUTREACH_WARMUP_START = env_str("OUTREACH_WARMUP_START")  # YYYY-MM-DD; empty: no ramp
OUTREACH_WARMUP_DAYS = env_int("OUTREACH_WARMUP_DAYS", 30, minimum=1)
OUTREACH_WARMUP_FIRST_DAY_CAP = env_int("OUTREACH_WARMUP_FIRST_DAY_CAP", 50, minimum=1)
OUTREACH_SOFT_BOUNCE_RETRIES = env_int("OUTREACH_SOFT_BOUNCE_RETRIES", 3, minimum=0)
OUTREACH_SOFT_BOUNCE_RETRY_MINUTES = env_int("OUTREACH_SOFT_BOUNCE_RETRY_MINUTES", 60, minimum=1)
# Deliverability brake: sending pauses itself past these rates over 7 days (Gmail's complaint
# ceiling is 0.3%), once at least OUTREACH_BRAKE_MIN_SAMPLE mails were sent in that time.
OUTREACH_MAX_COMPLAINT_RATE = env_float("OUTREACH_MAX_COMPLAINT_RATE", 0.003)
OUTREACH_MAX_BOUNCE_RATE = env_float("OUTREACH_MAX_BOUNCE_RATE", 0.05)
OUTREACH_BRAKE_MIN_SAMPLE = env_int("OUTREACH_BRAKE_MIN_SAMPLE", 100, minimum=1)
for _name, _rate in (
    ("OUTREACH_MAX_COMPLAINT_RATE", OUTREACH_MAX_COMPLAINT_RATE),
    ("OUTREACH_MAX_BOUNCE_RATE", OUTREACH_MAX_BOUNCE_RATE),
):
    if not 0.0 < _rate <= 1.0:
        raise SettingsError(f"{_name} must be above 0 and at most 1 (got {_rate})")

# ---------------------------------------------------------------------------------------
# Event bus: Kafka when KAFKA_BOOTSTRAP_SERVERS is set, in-process after commit otherwise
# ---------------------------------------------------------------------------------------
KAFKA_BOOTSTRAP_SERVERS = env_str("KAFKA_BOOTSTRAP_SERVERS")
KAFKA_SECURITY_PROTOCOL = env_str("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
KAFKA_SASL_MECHANISM = env_str("KAFKA_SASL_MECHANISM")
KAFKA_SASL_USERNAME = env_str("KAFKA_SASL_USERNAME")
KAFKA_SASL_PASSWORD = env_str("KAFKA_SASL_PASSWORD")
KAFKA_TOPIC_PARTITIONS = env_int("KAFKA_TOPIC_PARTITIONS", 6, minimum=1)
KAFKA_REPLICATION_FACTOR = env_int("KAFKA_REPLICATION_FACTOR", 1, minimum=1)
KAFKA_CONSUMER_GROUP_PREFIX = env_str("KAFKA_CONSUMER_GROUP_PREFIX", "pipeline-whisperer")
KAFKA_SESSION_TIMEOUT_MS = env_int("KAFKA_SESSION_TIMEOUT_MS", 45_000, minimum=1_000)
KAFKA_PUBLISH_TIMEOUT_SECONDS = env_int("KAFKA_PUBLISH_TIMEOUT_SECONDS", 30, minimum=1)

PIPELINE_BATCH_SIZE = env_int("PIPELINE_BATCH_SIZE", 500, minimum=1)
# The largest event the pipeline carries (its JSON), checked where events enter; producers and
# topics allow it plus KAFKA_MESSAGE_HEADROOM_BYTES for the key and headers.
PIPELINE_MAX_EVENT_BYTES = env_int("PIPELINE_MAX_EVENT_BYTES", 900_000, minimum=1_000)
KAFKA_MESSAGE_HEADROOM_BYTES = 64 * 1024
PIPELINE_MAX_ATTEMPTS = env_int("PIPELINE_MAX_ATTEMPTS", 3, minimum=1)
PIPELINE_RETRY_BACKOFF_SECONDS = env_float("PIPELINE_RETRY_BACKOFF_SECONDS", 0.5)
# A dependency that is down is waited for, never a dead letter; past this long the stage exits non-zero.
PIPELINE_OUTAGE_MAX_BACKOFF_SECONDS = env_float("PIPELINE_OUTAGE_MAX_BACKOFF_SECONDS", 30.0)
PIPELINE_OUTAGE_GIVE_UP_SECONDS = env_float("PIPELINE_OUTAGE_GIVE_UP_SECONDS", 600.0)
# A stage process's own liveness/readiness port (0: none), and how long a loop may go without progress.
PIPELINE_PROBE_PORT = env_int("PIPELINE_PROBE_PORT", 0, minimum=0)
PIPELINE_PROBE_STALL_SECONDS = env_float("PIPELINE_PROBE_STALL_SECONDS", 120.0)
INGEST_MAX_BATCH = env_int("INGEST_MAX_BATCH", 500, minimum=1)
OUTREACH_EXPIRY_INTERVAL_SECONDS = env_int("OUTREACH_EXPIRY_INTERVAL_SECONDS", 300, minimum=1)
OUTREACH_SEND_CONNECTIONS = env_int("OUTREACH_SEND_CONNECTIONS", 4, minimum=1)
# The dispatcher looks for due mail this often, and resends a claimed mail whose send a crash
# interrupted once its claim is this old (under the same Message-ID).
OUTREACH_DISPATCH_INTERVAL_SECONDS = env_float("OUTREACH_DISPATCH_INTERVAL_SECONDS", 5.0)
OUTREACH_DISPATCH_CLAIM_TIMEOUT_SECONDS = env_int("OUTREACH_DISPATCH_CLAIM_TIMEOUT_SECONDS", 300, minimum=10)

# ---------------------------------------------------------------------------------------
# Staff console (issue 6): the dashboard under /admin/console/
# ---------------------------------------------------------------------------------------
CONSOLE_REFRESH_SECONDS = env_int("CONSOLE_REFRESH_SECONDS", 15, minimum=1)

# ---------------------------------------------------------------------------------------
# Scoring: rules by default, any OpenAI-compatible model when OPENAI_API_KEY is set
# ---------------------------------------------------------------------------------------
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL")  # empty means the SDK's default endpoint
OPENAI_MODEL = env_str("OPENAI_MODEL", "gpt-4o-mini")
LLM_TIMEOUT_SECONDS = env_float("LLM_TIMEOUT_SECONDS", 10.0)
LLM_MAX_ATTEMPTS = env_int("LLM_MAX_ATTEMPTS", 3, minimum=1)
LLM_BREAKER_FAILURES = env_int("LLM_BREAKER_FAILURES", 5, minimum=1)
LLM_BREAKER_RESET_SECONDS = env_float("LLM_BREAKER_RESET_SECONDS", 30.0)

# ---------------------------------------------------------------------------------------
# Backups (ops app: manage.py backup / restore / verify_backup / list_backups)
# ---------------------------------------------------------------------------------------
BACKUP_DIR = BASE_DIR / env_str("BACKUP_DIR", str(VAR_DIR / "backups"))  # a relative path is under BASE_DIR
BACKUP_RETENTION_DAYS = env_int("BACKUP_RETENTION_DAYS", 7, minimum=0)  # 0: no limit by age
BACKUP_RETENTION_COUNT = env_int("BACKUP_RETENTION_COUNT", 0, minimum=0)  # 0: no limit by count
# Off-site copies (ops/remote.py): `s3://bucket/prefix` on any S3-compatible store; empty means
# local only. Credentials come from boto3's own chain (AWS_* variables, profile, instance role), never
# from a setting, so they cannot be logged with the settings.
BACKUP_REMOTE_URL = env_str("BACKUP_REMOTE_URL")
BACKUP_REMOTE_ENDPOINT_URL = env_str("BACKUP_REMOTE_ENDPOINT_URL")  # empty: AWS (or AWS_ENDPOINT_URL_S3)
BACKUP_REMOTE_REGION = env_str("BACKUP_REMOTE_REGION")  # empty: boto3's own (AWS_REGION, profile)
BACKUP_REMOTE_SSE = env_str("BACKUP_REMOTE_SSE")  # empty, AES256 or aws:kms
BACKUP_REMOTE_SSE_KMS_KEY_ID = env_str("BACKUP_REMOTE_SSE_KMS_KEY_ID")  # with aws:kms; empty: the account's key
BACKUP_REMOTE_RETENTION_DAYS = env_int("BACKUP_REMOTE_RETENTION_DAYS", BACKUP_RETENTION_DAYS, minimum=0)
BACKUP_REMOTE_RETENTION_COUNT = env_int("BACKUP_REMOTE_RETENTION_COUNT", BACKUP_RETENTION_COUNT, minimum=0)

# ---------------------------------------------------------------------------------------
# Health probes and metrics (health app). PROMETHEUS_MULTIPROC_DIR is read by
# prometheus_client itself: set it (to an emptied directory) when gunicorn runs several workers.
# ---------------------------------------------------------------------------------------
HEALTH_CHECK_TIMEOUT_SECONDS = env_float("HEALTH_CHECK_TIMEOUT_SECONDS", 2.0)
# Readiness and startup answers are reused for this long per process, so frequent probes and
# load balancers do not each open broker and database connections; 0 checks every time.
HEALTH_PROBE_CACHE_SECONDS = env_float("HEALTH_PROBE_CACHE_SECONDS", 1.0)
HEALTH_OUTBOX_MAX_AGE_SECONDS = env_int("HEALTH_OUTBOX_MAX_AGE_SECONDS", 300, minimum=1)
HEALTH_STAGE_STALL_SECONDS = env_int("HEALTH_STAGE_STALL_SECONDS", 300, minimum=1)
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"])
try:
    for _network in METRICS_ALLOWED_NETWORKS:
        ipaddress.ip_network(_network)
except ValueError as _error:
    raise SettingsError(f"METRICS_ALLOWED_NETWORKS must list CIDRs such as 10.0.0.0/8 ({_error})") from None

# ---------------------------------------------------------------------------------------
# Logging and error tracking (docs/OBSERVABILITY.md)
# ---------------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOG_FORMAT = env_str("LOG_FORMAT", "json").lower()
if LOG_FORMAT not in {"json", "console"}:
    raise SettingsError(f"LOG_FORMAT must be json or console (got {LOG_FORMAT!r})")
LOGGING = logging_config(level=LOG_LEVEL, log_format=LOG_FORMAT)

SENTRY_DSN = env_str("SENTRY_DSN")
SENTRY_ENVIRONMENT = env_str("SENTRY_ENVIRONMENT", "development" if DEBUG else "production")
SENTRY_RELEASE = env_str("SENTRY_RELEASE", f"pipeline-whisperer@{__version__}")
SENTRY_SAMPLE_RATE = env_float("SENTRY_SAMPLE_RATE", 1.0)
SENTRY_TRACES_SAMPLE_RATE = env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0)
for _name, _rate in (
    ("SENTRY_SAMPLE_RATE", SENTRY_SAMPLE_RATE),
    ("SENTRY_TRACES_SAMPLE_RATE", SENTRY_TRACES_SAMPLE_RATE),
):
    if not 0.0 <= _rate <= 1.0:
        raise SettingsError(f"{_name} must be between 0 and 1 (got {_rate})")
if SENTRY_DSN:
    # Imported only when on: sentry-sdk and its Django integration (django.http) cost every
    # process ~0.15 s of start-up.
    from pipeline_whisperer.sentry import sentry_init

    sentry_init(
        dsn=SENTRY_DSN,
        environment=SENTRY_ENVIRONMENT,
        release=SENTRY_RELEASE,
        sample_rate=SENTRY_SAMPLE_RATE,
        traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE,
    )
