"""Tests: PostgreSQL/Redis where DATABASE_URL/REDIS_URL point to them, the embedded default otherwise."""

from __future__ import annotations

import os
from pathlib import Path

from marlin.settings.envparse import env_list
from marlin.settings.local import *  # noqa: F403


def _index_addresses(hosts: list[str]) -> list[str]:
    import ipaddress
    import socket

    found = set()
    for host in hosts:
        try:
            infos = socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
        except OSError:  # no DNS here: setup simply cannot reach the index
            continue
        for *_, sockaddr in infos:
            if not ipaddress.ip_address(sockaddr[0]).is_loopback:
                found.add(sockaddr[0])
    return sorted(found)


DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Only GitHub; the loopback git server of a test run is added by tests/conftest.py.
MARLIN_GIT_ALLOWED_BASES = env_list("MARLIN_TEST_GIT_ALLOWED_BASES", ["https://github.com"])
MARLIN_REPO_CACHE_DIR = Path(os.environ.get("MARLIN_REPO_CACHE_DIR") or VAR_DIR / "test-repos")  # noqa: F405
# Each test run gets its own queue, so stale messages from another run are never consumed.
CELERY_TASK_DEFAULT_QUEUE = (
    os.environ.get("CELERY_TASK_DEFAULT_QUEUE") or f"marlin-test-{os.getpid()}"
)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not :memory:, so a worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405
# A worker process started by the tests is pointed at the test database the tests created.
if os.environ.get("MARLIN_TEST_DATABASE_NAME"):
    DATABASES["default"]["NAME"] = os.environ["MARLIN_TEST_DATABASE_NAME"]  # noqa: F405
# Export files of test runs stay apart from a developer's own exports.
if STORAGES["exports"]["BACKEND"].endswith("FileSystemStorage"):  # noqa: F405
    STORAGES["exports"]["OPTIONS"]["location"] = os.environ.get("MARLIN_EXPORT_DIR") or str(  # noqa: F405
        VAR_DIR / "test-exports"  # noqa: F405
    )
# Uploaded catalogue files of test runs too.
STORAGES["catalogue_imports"]["OPTIONS"]["location"] = os.environ.get(  # noqa: F405
    "MARLIN_IMPORT_DIR"
) or str(VAR_DIR / "test-imports")  # noqa: F405
# The model key variables the test suite's fake endpoints and agents name.
MARLIN_MODEL_KEY_NAMES = [  # noqa: F405
    *MARLIN_MODEL_KEY_NAMES,  # noqa: F405
    "FAKE_ANTHROPIC_KEY",
    "FAKE_OPENAI_KEY",
    "VLLM_KEY",
    "AGENT_API_KEY",
    "AGENT_CONFIG",
    "NOT_SET_ANYWHERE",
]
# Many tests present bad tokens on purpose, all from 127.0.0.1 and within a minute; the
# throttle's own tests (tests/marlin/test_tokens.py) lower this again.
MARLIN_API_AUTH_FAILURES_RATE = "100000/min"
# ... and its own evidence queue, which the test worker consumes too.
MARLIN_EVIDENCE_QUEUE = (
    os.environ.get("MARLIN_EVIDENCE_QUEUE") or f"{CELERY_TASK_DEFAULT_QUEUE}-evidence"
)
CELERY_TASK_ROUTES = {"tasks.jobs.evidence_collect_run": {"queue": MARLIN_EVIDENCE_QUEUE}}
MARLIN_EVIDENCE_DIR = Path(os.environ.get("MARLIN_EVIDENCE_DIR") or VAR_DIR / "test-evidence")  # noqa: F405

# Wherever this suite runs, the package index may sit behind a gateway at a non-public
# address (a registry mirror): setup may reach the addresses the index's names have here,
# and nothing else private (the loopback never: marlin/egress.py).
if "MARLIN_EVIDENCE_SETUP_NETWORKS" not in os.environ:
    MARLIN_EVIDENCE_SETUP_NETWORKS = _index_addresses(MARLIN_EVIDENCE_SETUP_HOSTS)  # noqa: F405
# Pair draws repeat from run to run (tasks/pool.py seeds each draw from this).
MARLIN_PAIRING_SEED = 1729
