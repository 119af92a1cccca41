"""Development on the embedded default: SQLite, filesystem broker, plain http on localhost.

The defaults go in through the environment so base.py derives everything from them the
same way as in production (DEBUG relaxes the HTTPS hardening there); real env vars win.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_DEBUG", "true")
os.environ.setdefault(
    "DJANGO_SECRET_KEY", "insecure-local-development-key-do-not-use-in-production"
)
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
# The demo serves its repositories from a git HTTP server on the loopback.
os.environ.setdefault(
    "MARLIN_GIT_ALLOWED_BASES",
    f"https://github.com,http://127.0.0.1:{os.environ.get('MARLIN_DEMO_GIT_PORT', '8765')}",
)

from marlin.settings.base import *  # noqa: E402, F403

VAR_DIR.mkdir(parents=True, exist_ok=True)  # noqa: F405
