"""Development on the embedded default: SQLite, filesystem broker, plain http on localhost."""

from __future__ import annotations

import os

from marlin.settings.base import *  # noqa: F403
from marlin.settings.envparse import env_bool, env_list

DEBUG = env_bool("DJANGO_DEBUG", True)
VAR_DIR.mkdir(parents=True, exist_ok=True)  # noqa: F405
SECRET_KEY = SECRET_KEY or "insecure-local-development-key-do-not-use-in-production"  # noqa: F405
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = False
SECURE_HSTS_PRELOAD = False
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
# The demo serves its repositories from a git HTTP server on the loopback.
MARLIN_GIT_ALLOWED_BASES = env_list(
    "MARLIN_GIT_ALLOWED_BASES",
    ["https://github.com", f"http://127.0.0.1:{os.environ.get('MARLIN_DEMO_GIT_PORT', '8765')}"],
)
