"""Every setting lives here; local.py and test.py only override. Production is this module + env vars."""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path

from csp.constants import NONCE, NONE, SELF
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
    # Before marlin: marlin/admin.py replaces knox's token admin.
    "knox",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "csp",
    "marlin.apps.MarlinConfig",
    "repos.apps.ReposConfig",
    "tasks.apps.TasksConfig",
    "reviews.apps.ReviewsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # HTML and fragments compressed (the workspace's diff is ~10x smaller); Django pads the
    # gzip stream against BREACH.
    "django.middleware.gzip.GZipMiddleware",
    # Below WhiteNoise (static files need neither) and above the rest, so even an answer made
    # by a middleware (a CSRF failure, a redirect) carries the policy and the cache rule.
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "marlin.middleware.PrivateCacheMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
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
# A kept connection is checked before reuse: after a PostgreSQL restart the first request
# of each process would otherwise fail on the dead connection.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
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
# django-axes first: it refuses a locked-out user/address before a password is checked.
# Permissions come from OneQueryModelBackend (one query a request, not two), which signs no
# one in; ModelBackend checks passwords (so sessions keep naming it) and answers permission
# checks from the set the first one cached on the user, so it adds no query.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "marlin.auth_backends.OneQueryModelBackend",
    "django.contrib.auth.backends.ModelBackend",
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
    # Uploaded catalogue files wait here for the import job; the worker must see this folder.
    "catalogue_imports": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": os.environ.get("MARLIN_IMPORT_DIR") or str(VAR_DIR / "imports")},
    },
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security: secure unless explicitly relaxed (local.py does, for plain-http development).
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
# An orchestrator probes the container over plain http: a redirect would hide a 503.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^health/$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", not DEBUG)
# Database sessions, read by one fixed statement (marlin/session_store.py says why).
SESSION_ENGINE = "marlin.session_store"
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Only our own files run: no inline script (an inline one needs {{ request.csp_nonce }}),
# no inline style, nothing from another origin. The API docs relax style-src in marlin/urls.py.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

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
        # kombu polls the folder once a second by default: a job waited up to 1 s for the
        # worker (generation took 1.35-1.45x the model's latency). A listdir every 50 ms
        # costs the idle worker well under 1% of a core.
        "polling_interval": 0.05,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Must exceed the longest job's hard time limit, or Redis redelivers a job still running.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    # A Redis that accepts connections but never answers would hold a request's job send
    # (and so the request) forever; the read timeout stays above kombu's 1 s BRPOP wait.
    CELERY_BROKER_TRANSPORT_OPTIONS |= {"socket_connect_timeout": 2, "socket_timeout": 5}
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
# A running generation job renews its candidate's lease every HEARTBEAT seconds; a lease
# not renewed for HEARTBEAT_STALE seconds means the job's worker died, and the reaper (every
# REAP seconds) sends the candidate again: recovery within HEARTBEAT_STALE + REAP seconds.
MARLIN_GENERATION_HEARTBEAT_SECONDS = env_int("MARLIN_GENERATION_HEARTBEAT_SECONDS", 15, minimum=1)
MARLIN_GENERATION_HEARTBEAT_STALE_SECONDS = env_int(
    "MARLIN_GENERATION_HEARTBEAT_STALE_SECONDS", 60, minimum=2
)
MARLIN_GENERATION_REAP_SECONDS = env_int("MARLIN_GENERATION_REAP_SECONDS", 30, minimum=1)
if MARLIN_GENERATION_HEARTBEAT_STALE_SECONDS < 2 * MARLIN_GENERATION_HEARTBEAT_SECONDS:
    # One late or failed renewal (a slow database) must not pass for a dead worker.
    raise ImproperlyConfigured(
        "MARLIN_GENERATION_HEARTBEAT_STALE_SECONDS must be at least twice "
        "MARLIN_GENERATION_HEARTBEAT_SECONDS."
    )
# The generation job's own limits: the soft one fails the candidate as too slow.
MARLIN_GENERATION_SOFT_TIME_LIMIT_SECONDS = env_int(
    "MARLIN_GENERATION_SOFT_TIME_LIMIT_SECONDS", 600, minimum=1
)
MARLIN_GENERATION_TIME_LIMIT_SECONDS = env_int(
    "MARLIN_GENERATION_TIME_LIMIT_SECONDS", 660, minimum=2
)
if not (MARLIN_GENERATION_SOFT_TIME_LIMIT_SECONDS < MARLIN_GENERATION_TIME_LIMIT_SECONDS < 3600):
    # Past the broker's visibility timeout (3600 s) a job still running is delivered again.
    raise ImproperlyConfigured(
        "MARLIN_GENERATION_SOFT_TIME_LIMIT_SECONDS must be below "
        "MARLIN_GENERATION_TIME_LIMIT_SECONDS, and that below 3600."
    )
# Pair sampling: an endpoint at its max_concurrency with at least this many candidates
# waiting is skipped when a new task draws its pair (while two others remain).
MARLIN_POOL_SATURATION_QUEUE = env_int("MARLIN_POOL_SATURATION_QUEUE", 8, minimum=1)
# Below this many comparisons a model's leaderboard row is marked provisional.
MARLIN_LEADERBOARD_MIN_COMPARISONS = env_int("MARLIN_LEADERBOARD_MIN_COMPARISONS", 20, minimum=1)
# A pair taken for judging and not judged within this many hours goes back to the others.
MARLIN_JUDGING_HOLD_HOURS = env_int("MARLIN_JUDGING_HOLD_HOURS", 24, minimum=1)
# Empty: pairs are drawn from the system's randomness. A number makes every draw repeatable
# (the test settings set one).
MARLIN_PAIRING_SEED = (
    env_int("MARLIN_PAIRING_SEED", 0) if os.environ.get("MARLIN_PAIRING_SEED") else None
)
# Periodic repair of rows whose job died or whose message was lost; run by `celery beat`.
CELERY_BEAT_SCHEDULE = {
    "generation-reap-stale": {
        "task": "tasks.jobs.generation_reap_stale_run",
        "schedule": float(MARLIN_GENERATION_REAP_SECONDS),
    },
    "repository-reap-stale": {"task": "repos.jobs.repository_reap_stale_run", "schedule": 60.0},
    "catalogue-import-reap-stale": {
        "task": "repos.jobs.catalogue_import_reap_stale_run",
        "schedule": 60.0,
    },
    "evidence-reap-stale": {"task": "tasks.jobs.evidence_reap_stale_run", "schedule": 120.0},
    "review-claims-release-expired": {
        "task": "reviews.jobs.review_claims_release_expired_run",
        "schedule": 60.0,
    },
    "judging-tasks-release-stale": {
        "task": "reviews.jobs.judging_tasks_release_stale_run",
        "schedule": 300.0,
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# A RUNNING candidate without a lease (claimed before leases existed) older than this has
# outlived its job's hard limit.
MARLIN_GENERATION_STALE_SECONDS = env_int("MARLIN_GENERATION_STALE_SECONDS", 780, minimum=60)
if MARLIN_GENERATION_STALE_SECONDS <= MARLIN_GENERATION_TIME_LIMIT_SECONDS:
    raise ImproperlyConfigured(
        "MARLIN_GENERATION_STALE_SECONDS must exceed MARLIN_GENERATION_TIME_LIMIT_SECONDS."
    )
# A QUEUED row untouched for this long lost its message; it is sent again.
MARLIN_QUEUED_STALE_SECONDS = env_int("MARLIN_QUEUED_STALE_SECONDS", 300, minimum=30)
# ... or for this long while the broker's queue is empty: the broker lost the message.
MARLIN_QUEUED_LOST_SECONDS = env_int("MARLIN_QUEUED_LOST_SECONDS", 30, minimum=5)

# --- Cache (highlighted files, catalogue facets): Redis where there is one, else files
# under var/ so the web server and the worker share it. While Redis is unreachable the
# cache falls back to each process's memory and retries Redis every few seconds
# (marlin/resilient_cache.py): pages stay up, throttles count per process.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "marlin.resilient_cache.ResilientRedisCache",
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
# Catalogue files (admin, API, command): larger ones are refused with 413.
MARLIN_IMPORT_MAX_MB = env_int("MARLIN_IMPORT_MAX_MB", 200, minimum=1)
# A RUNNING import with no batch committed for this long lost its worker; it is resumed.
MARLIN_IMPORT_STALE_SECONDS = env_int("MARLIN_IMPORT_STALE_SECONDS", 120, minimum=10)

# --- The sandbox (marlin/sandbox.py) for coding agents and repository checks: bubblewrap.
MARLIN_SANDBOX_BWRAP = os.environ.get("MARLIN_SANDBOX_BWRAP", "bwrap")
# Read-only in the sandbox besides /usr, /bin, /lib*, /etc (e.g. where an agent CLI lives).
MARLIN_SANDBOX_READ_ONLY_PATHS = env_list("MARLIN_SANDBOX_READ_ONLY_PATHS", [])
# A worker running as root drops to this uid/gid in the sandbox (root ignores process limits).
MARLIN_SANDBOX_UID = env_int("MARLIN_SANDBOX_UID", 65534, minimum=1)
MARLIN_SANDBOX_MEMORY_MB = env_int("MARLIN_SANDBOX_MEMORY_MB", 8192, minimum=0)  # 0: no limit
MARLIN_SANDBOX_MAX_PROCESSES = env_int("MARLIN_SANDBOX_MAX_PROCESSES", 256, minimum=8)
MARLIN_SANDBOX_MAX_OUTPUT_BYTES = env_int(
    "MARLIN_SANDBOX_MAX_OUTPUT_BYTES", 1_000_000, minimum=1024
)
# The sandbox's own /tmp (and HOME in it) is a tmpfs of at most this size.
MARLIN_SANDBOX_TMP_MB = env_int("MARLIN_SANDBOX_TMP_MB", 1024, minimum=16)
# No single file a sandboxed command writes may exceed this (0: no limit).
MARLIN_SANDBOX_MAX_FILE_MB = env_int("MARLIN_SANDBOX_MAX_FILE_MB", 1024, minimum=0)

# --- Evidence (tasks/evidence*.py): a recipe's checks run on each candidate in the sandbox.
MARLIN_EVIDENCE_ENABLED = env_bool("MARLIN_EVIDENCE_ENABLED", True)
# Setup environments (venvs and the like), one per repository + commit + recipe.
MARLIN_EVIDENCE_DIR = Path(os.environ.get("MARLIN_EVIDENCE_DIR") or VAR_DIR / "evidence")
# Evidence jobs have their own queue, so long checks never hold up generation.
MARLIN_EVIDENCE_QUEUE = os.environ.get("MARLIN_EVIDENCE_QUEUE", "marlin-evidence")
# Setup reaches the network only through Marlin's egress proxy (marlin/egress.py), to these
# hosts (".example.org": its subdomains), on port 443, at public addresses or in these
# extra networks (an internal mirror; the loopback is never reachable).
MARLIN_EVIDENCE_SETUP_HOSTS = env_list(
    "MARLIN_EVIDENCE_SETUP_HOSTS", ["pypi.org", "files.pythonhosted.org"]
)
MARLIN_EVIDENCE_SETUP_NETWORKS = env_list("MARLIN_EVIDENCE_SETUP_NETWORKS", [])
# Each command's copy of the tree lives in a tmpfs of at most this size.
MARLIN_EVIDENCE_TREE_MB = env_int("MARLIN_EVIDENCE_TREE_MB", 1024, minimum=16)
MARLIN_EVIDENCE_MAX_OUTPUT_BYTES = env_int(
    "MARLIN_EVIDENCE_MAX_OUTPUT_BYTES", 4_000_000, minimum=4096
)
# A setup environment larger than this is refused (and removed).
MARLIN_EVIDENCE_ENV_MAX_MB = env_int("MARLIN_EVIDENCE_ENV_MAX_MB", 4096, minimum=16)
# A failed setup is not tried again for this long: every job at that commit reports it.
MARLIN_EVIDENCE_SETUP_RETRY_SECONDS = env_int("MARLIN_EVIDENCE_SETUP_RETRY_SECONDS", 600, minimum=0)
# The evidence job's limits; below the broker's visibility timeout (3600 s).
MARLIN_EVIDENCE_SOFT_TIME_LIMIT_SECONDS = env_int(
    "MARLIN_EVIDENCE_SOFT_TIME_LIMIT_SECONDS", 3000, minimum=10
)
MARLIN_EVIDENCE_TIME_LIMIT_SECONDS = env_int("MARLIN_EVIDENCE_TIME_LIMIT_SECONDS", 3300, minimum=11)
if not (MARLIN_EVIDENCE_SOFT_TIME_LIMIT_SECONDS < MARLIN_EVIDENCE_TIME_LIMIT_SECONDS < 3600):
    raise ImproperlyConfigured(
        "MARLIN_EVIDENCE_SOFT_TIME_LIMIT_SECONDS must be below "
        "MARLIN_EVIDENCE_TIME_LIMIT_SECONDS, and that below 3600."
    )
CELERY_TASK_ROUTES = {
    "tasks.jobs.evidence_collect_run": {"queue": MARLIN_EVIDENCE_QUEUE},
}

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
# Environment variables an endpoint may name as its key (api_key_env) or hand to a coding
# agent (pass_env): these, and any name starting with MARLIN_MODEL_KEY_. Marlin's own
# settings can never be named, so no admin can send a server secret to a URL of their choice.
MARLIN_MODEL_KEY_NAMES = env_list("MARLIN_MODEL_KEY_NAMES", ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"])
MARLIN_MODEL_KEY_PREFIX = "MARLIN_MODEL_KEY_"
_SERVER_SETTING = re.compile(r"(DJANGO_|CELERY_|MARLIN_|DATABASE_URL$|REDIS_URL$|PG[A-Z]*$)")
for _name in MARLIN_MODEL_KEY_NAMES:
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]{0,99}", _name) or _SERVER_SETTING.match(_name):
        raise ImproperlyConfigured(
            f"MARLIN_MODEL_KEY_NAMES may not list {_name!r}: name model keys only, never one "
            "of Marlin's own settings."
        )
# Bytes of instructions, conversation and repository context sent to a model.
MARLIN_PROMPT_CONTEXT_BYTES = env_int("MARLIN_PROMPT_CONTEXT_BYTES", 120_000, minimum=1000)
# Seconds the repository context of one prompt may take to read (file list and files); past
# it, context stops with what was read and says so, rather than the job timing out.
MARLIN_REPO_CONTEXT_SECONDS = env_int("MARLIN_REPO_CONTEXT_SECONDS", 60, minimum=1)
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
    # Tokens are knox's (hashed at rest, expiring), behind a brake on repeated bad keys.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "marlin.tokens.ApiTokenAuthentication",
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
# --- API tokens (knox, marlin/tokens.py): made by `manage.py create_api_token USER`, shown once.
MARLIN_API_TOKEN_TTL_HOURS = env_int("MARLIN_API_TOKEN_TTL_HOURS", 720, minimum=1)
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=MARLIN_API_TOKEN_TTL_HOURS),
    "AUTH_HEADER_PREFIX": "Token",  # the header clients already send
    "AUTO_REFRESH": False,  # a token dies at its expiry however much it is used
}
# Bad token keys allowed per client address before every token from it gets 429 until the
# window ends (DRF rate syntax). Counted in the cache; if the cache is down, nothing is refused.
MARLIN_API_AUTH_FAILURES_RATE = os.environ.get("MARLIN_API_AUTH_FAILURES_RATE", "20/min")
_RATE = r"[1-9]\d*/(s|sec|second|m|min|minute|h|hour|d|day)"
if not re.fullmatch(_RATE, MARLIN_API_AUTH_FAILURES_RATE):
    raise ImproperlyConfigured(
        f"MARLIN_API_AUTH_FAILURES_RATE={MARLIN_API_AUTH_FAILURES_RATE!r} is not like 20/min."
    )
# Proxies in front of the app whose X-Forwarded-For entry is believed (marlin/addresses.py).
# Production sits behind one TLS proxy; with none, a client could forge its address.
MARLIN_TRUSTED_PROXY_COUNT = env_int("MARLIN_TRUSTED_PROXY_COUNT", 0 if DEBUG else 1)

# --- Login lockout (django-axes) on /login/ and /admin/login/: a username with this many
# failures, or an address with this many, is refused (even the right password) for the
# cool-off. Attempts are kept in the database; an admin lifts a lock by deleting them.
MARLIN_LOGIN_FAILURE_LIMIT = env_int("MARLIN_LOGIN_FAILURE_LIMIT", 5, minimum=1)
MARLIN_LOGIN_LOCKOUT_MINUTES = env_int("MARLIN_LOGIN_LOCKOUT_MINUTES", 30, minimum=1)
AXES_FAILURE_LIMIT = MARLIN_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=MARLIN_LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
# The lock lasts the cool-off from the last failure that counted, not from every retry.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "marlin.addresses.client_ip"

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
    # The schema lists every route, the admin ones too: signed-in users only (anonymous: 401).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
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
