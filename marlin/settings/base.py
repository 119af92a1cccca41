"""Every setting lives here; local.py and test.py only override. Production is this module + env vars."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from marlin.settings.envparse import env_bool, env_db, env_int, env_list, env_secret

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("MARLIN_VAR_DIR") or BASE_DIR / "var")

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
if len(SECRET_KEY) < 32:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set to at least 32 characters."
    )
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"DJANGO_CSRF_TRUSTED_ORIGINS entry {_origin!r} must start with http:// or https://"
        )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "marlin.apps.MarlinConfig",
    "repos.apps.ReposConfig",
    "tasks.apps.TasksConfig",
    "reviews.apps.ReviewsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "marlin.urls"
WSGI_APPLICATION = "marlin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "marlin.context_processors.roles",
            ],
        },
    },
]

DATABASES = {"default": env_db("DATABASE_URL", f"sqlite:///{VAR_DIR / 'marlin.sqlite3'}")}
# Every request is one transaction; jobs are enqueued with transaction.on_commit.
DATABASES["default"]["ATOMIC_REQUESTS"] = True
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DJANGO_CONN_MAX_AGE", 60)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The web server and the worker share the file. IMMEDIATE transactions take the write
    # lock up front, so concurrent writers queue (up to the timeout) instead of deadlocking
    # on a read-to-write upgrade and failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")
# Export files: a folder by default; any Django storage backend (e.g. django-storages' S3)
# can be named instead, with its options as a JSON object.
MARLIN_EXPORT_DIR = Path(os.environ.get("MARLIN_EXPORT_DIR") or VAR_DIR / "exports")
_export_backend = os.environ.get(
    "MARLIN_EXPORT_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage"
)
try:
    _export_options = json.loads(os.environ.get("MARLIN_EXPORT_STORAGE_OPTIONS") or "{}")
except ValueError as _exc:
    raise ImproperlyConfigured(f"MARLIN_EXPORT_STORAGE_OPTIONS is not JSON: {_exc}") from _exc
if not isinstance(_export_options, dict):
    raise ImproperlyConfigured("MARLIN_EXPORT_STORAGE_OPTIONS must be a JSON object.")
if _export_backend.endswith("FileSystemStorage"):
    _export_options.setdefault("location", str(MARLIN_EXPORT_DIR))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "exports": {"BACKEND": _export_backend, "OPTIONS": _export_options},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security: secure unless explicitly relaxed (local.py does, for plain-http development).
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Celery: Redis in production; kombu's filesystem transport when no server is configured.
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL or "filesystem://"
for _name, _url in (("REDIS_URL", REDIS_URL), ("CELERY_BROKER_URL", CELERY_BROKER_URL)):
    if _url and not _url.startswith(("redis://", "rediss://", "amqp://", "filesystem://")):
        raise ImproperlyConfigured(
            f"{_name}={_url!r} is not a redis://, amqp:// or filesystem:// URL"
        )
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    # kombu does not create its folders; without them neither side can start.
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        "control_folder": str(_broker_dir / "control"),
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Must exceed the longest job's hard time limit, or Redis redelivers a job still running.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "marlin")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 600, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 660, minimum=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Periodic repair of rows whose job died or whose message was lost; run by `celery beat`.
CELERY_BEAT_SCHEDULE = {
    "generation-reap-stale": {"task": "tasks.jobs.generation_reap_stale_run", "schedule": 60.0},
    "repository-reap-stale": {"task": "repos.jobs.repository_reap_stale_run", "schedule": 60.0},
    "review-claims-release-expired": {
        "task": "reviews.jobs.review_claims_release_expired_run",
        "schedule": 60.0,
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# A RUNNING candidate older than this has outlived its job's hard limit (660 s).
MARLIN_GENERATION_STALE_SECONDS = env_int("MARLIN_GENERATION_STALE_SECONDS", 780, minimum=60)
# A QUEUED row untouched for this long lost its message; it is sent again.
MARLIN_QUEUED_STALE_SECONDS = env_int("MARLIN_QUEUED_STALE_SECONDS", 300, minimum=30)

# --- Cache (highlighted files, catalogue facets): Redis where there is one, else files
# under var/ so the web server and the worker share it.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "marlin",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Repositories: where clones are cached and which git hosts may be cloned from.
MARLIN_REPO_CACHE_DIR = Path(os.environ.get("MARLIN_REPO_CACHE_DIR") or VAR_DIR / "repos")
# Base URLs (scheme://host[:port]) whose repositories may be cloned. Production: GitHub only.
MARLIN_GIT_ALLOWED_BASES = env_list("MARLIN_GIT_ALLOWED_BASES", ["https://github.com"])
for _base in MARLIN_GIT_ALLOWED_BASES:
    if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", _base):
        raise ImproperlyConfigured(
            f"MARLIN_GIT_ALLOWED_BASES entry {_base!r} must be scheme://host[:port], no path"
        )
MARLIN_CLONE_TIMEOUT_SECONDS = env_int("MARLIN_CLONE_TIMEOUT_SECONDS", 300, minimum=1)
MARLIN_CLONE_MAX_MB = env_int("MARLIN_CLONE_MAX_MB", 2048, minimum=1)
# Files larger than this are neither fetched at clone time nor shown when browsing.
MARLIN_BROWSE_MAX_FILE_BYTES = env_int("MARLIN_BROWSE_MAX_FILE_BYTES", 1024 * 1024, minimum=1024)

# --- Work limits.
# Notifications: always in the app; also by e-mail when on (through EMAIL_BACKEND).
MARLIN_NOTIFY_BY_EMAIL = env_bool("MARLIN_NOTIFY_BY_EMAIL", False)
EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
EMAIL_HOST = os.environ.get("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = os.environ.get("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_secret("DJANGO_EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "marlin@localhost")
MARLIN_PROMPT_MAX_CHARS = env_int("MARLIN_PROMPT_MAX_CHARS", 20000, minimum=100)
# Bytes of instructions, conversation and repository context sent to a model.
MARLIN_PROMPT_CONTEXT_BYTES = env_int("MARLIN_PROMPT_CONTEXT_BYTES", 120_000, minimum=1000)
# A model answer (or diff) longer than this is cut and marked as cut.
MARLIN_ANSWER_MAX_CHARS = env_int("MARLIN_ANSWER_MAX_CHARS", 400_000, minimum=1000)
# Attempts per candidate for transient model errors, and the backoff between them.
MARLIN_GENERATION_MAX_ATTEMPTS = env_int("MARLIN_GENERATION_MAX_ATTEMPTS", 4, minimum=1)
MARLIN_GENERATION_BACKOFF_SECONDS = env_int("MARLIN_GENERATION_BACKOFF_SECONDS", 5, minimum=0)
MARLIN_GENERATION_BACKOFF_MAX_SECONDS = env_int(
    "MARLIN_GENERATION_BACKOFF_MAX_SECONDS", 120, minimum=1
)

REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes DRF answer a missing or bad credential
    # with 401 (sign in) rather than 403 (not allowed). Sessions still work as before.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "marlin.api.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
# Per user, on the API endpoints that start model calls (DRF rate syntax: N/second|minute|hour|day).
MARLIN_API_MODEL_CALLS_RATE = os.environ.get("MARLIN_API_MODEL_CALLS_RATE", "60/hour")
if not re.fullmatch(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)", MARLIN_API_MODEL_CALLS_RATE):
    raise ImproperlyConfigured(
        f"MARLIN_API_MODEL_CALLS_RATE={MARLIN_API_MODEL_CALLS_RATE!r} is not like 60/hour."
    )
SPECTACULAR_SETTINGS = {
    "TITLE": "Marlin API",
    "DESCRIPTION": "Every flow of the browser, with the same permissions and blinding. "
    "Authenticate with a session or a token: `Authorization: Token <key>`.",
    "VERSION": "0.2.0",
    # Swagger UI and Redoc come from our own static files (drf-spectacular-sidecar): no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "TaskStatusEnum": "tasks.models.Task.Status",
        "CandidateStatusEnum": "tasks.models.Candidate.Status",
        "CloneStatusEnum": "repos.models.Repository.CloneStatus",
        "ExportStatusEnum": "reviews.models.ExportJob.Status",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
}
