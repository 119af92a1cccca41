"""CI hygiene (issue 14, item 11): one install, the database CI was told to use, per-test
timeouts and a coverage floor."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import psycopg2
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
CI_RUN = (ROOT / ".ci" / "run").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _commands(script: str) -> list[str]:
    """The script's command lines, comments and log messages left out."""
    lines = [line.split("#", 1)[0].strip() for line in script.splitlines()]
    return [line for line in lines if line and not line.startswith(("log ", "echo "))]


def test_ci_installs_once_through_the_readme_script():
    commands = _commands(CI_RUN)
    assert not [line for line in commands if "pip install" in line or "-m venv" in line]
    assert commands.count("python3 scripts/dev.py install") == 1
    # The README's test command then finds the install stamp and does not install again.
    dev = (ROOT / "scripts" / "dev.py").read_text()
    assert "stamp.exists() and stamp.read_text() == digest" in dev


def test_ci_never_names_a_database_of_its_own():
    assert not re.search(r"createdb|CREATE DATABASE|datname = 'marlin'", CI_RUN)
    assert "scripts/ensure_database.py" in CI_RUN


@pytest.fixture
def server_url() -> str:
    database = settings.DATABASES["default"]
    if not database["ENGINE"].endswith("postgresql"):
        pytest.skip("creates a PostgreSQL database; CI always runs on PostgreSQL")
    host, port = database.get("HOST") or "127.0.0.1", database.get("PORT") or 5432
    user = database.get("USER") or "postgres"
    return f"postgres://{user}@{host}:{port}"


def _exists(server_url: str, name: str) -> bool:
    connection = psycopg2.connect(f"{server_url}/postgres")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            return cursor.fetchone() is not None
    finally:
        connection.close()


def _drop(server_url: str, name: str) -> None:
    connection = psycopg2.connect(f"{server_url}/postgres")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        connection.close()


def test_ensure_database_creates_the_one_database_url_names(server_url):
    name = f"marlin_hygiene_{uuid.uuid4().hex[:10]}"
    env = dict(os.environ, DATABASE_URL=f"{server_url}/{name}")
    script = [sys.executable, str(ROOT / "scripts" / "ensure_database.py")]
    try:
        first = subprocess.run(script, env=env, capture_output=True, text=True, check=True)
        again = subprocess.run(script, env=env, capture_output=True, text=True, check=True)
        assert first.stdout.strip() == f"created {name}"
        assert again.stdout.strip() == f"exists {name}"
        assert _exists(server_url, name)
    finally:
        _drop(server_url, name)


def test_every_test_has_a_timeout(request):
    assert request.config.pluginmanager.hasplugin("timeout")
    timeout = float(request.config.getini("timeout"))
    assert 0 < timeout <= 600


def test_coverage_floor_is_held_at_todays_level():
    floor = PYPROJECT["tool"]["coverage"]["report"]["fail_under"]
    assert floor >= 92
    assert "--cov" in CI_RUN
    assert set(PYPROJECT["tool"]["coverage"]["run"]["source"]) == {
        "marlin",
        "tasks",
        "reviews",
        "repos",
    }


def test_clearing_the_cache_keeps_the_brokers_queued_jobs():
    """A test's cache.clear() ran FLUSHDB on the Redis database that is also the broker."""
    from django.core.cache import cache

    from marlin.celery import app as celery_app

    queue_name = f"hygiene-{uuid.uuid4().hex[:10]}"
    with celery_app.connection_for_write() as connection:
        queue = connection.SimpleQueue(queue_name)
        try:
            queue.put({"job": "still here"})
            cache.set("hygiene-key", "cached")
            cache.clear()
            assert cache.get("hygiene-key") is None
            assert queue.get(timeout=5).payload == {"job": "still here"}
        finally:
            queue.clear()
            queue.close()
