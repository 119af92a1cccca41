"""The generation job's liveness and time-limit settings: defaults that recover a dead
worker's candidates within two minutes, and values that could not work stop start-up."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

from tests.conftest import BASE_DIR

BASE_ENV = {
    "DJANGO_SETTINGS_MODULE": "marlin.settings.base",
    "DJANGO_SECRET_KEY": "generation-settings-test-" * 3,
    "DATABASE_URL": "sqlite:////tmp/marlin-generation-settings.sqlite3",
}


def _load_settings(**overrides: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MARLIN_"))}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=BASE_DIR,
        env={**clean, **BASE_ENV, **overrides},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_defaults_recover_a_dead_workers_candidates_within_two_minutes():
    # A lease runs out HEARTBEAT_STALE after the last beat; the reaper notices within REAP.
    worst = (
        settings.MARLIN_GENERATION_HEARTBEAT_STALE_SECONDS + settings.MARLIN_GENERATION_REAP_SECONDS
    )
    assert worst <= 120 - 30  # leaves a generation's own time within the two minutes
    schedule = settings.CELERY_BEAT_SCHEDULE["generation-reap-stale"]["schedule"]
    assert schedule == settings.MARLIN_GENERATION_REAP_SECONDS
    # One missed beat (a slow database) is not taken for a dead worker.
    assert (
        settings.MARLIN_GENERATION_HEARTBEAT_STALE_SECONDS
        >= 2 * settings.MARLIN_GENERATION_HEARTBEAT_SECONDS
    )


def test_the_environment_sets_them():
    result = _load_settings(
        MARLIN_GENERATION_HEARTBEAT_SECONDS="5",
        MARLIN_GENERATION_HEARTBEAT_STALE_SECONDS="20",
        MARLIN_GENERATION_REAP_SECONDS="10",
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"MARLIN_GENERATION_HEARTBEAT_SECONDS": "31"},
            "HEARTBEAT_STALE_SECONDS must be at least twice",
        ),
        ({"MARLIN_GENERATION_REAP_SECONDS": "0"}, "MARLIN_GENERATION_REAP_SECONDS='0' must be"),
        ({"MARLIN_GENERATION_HEARTBEAT_SECONDS": "soon"}, "is not a whole number"),
        (
            {"MARLIN_GENERATION_SOFT_TIME_LIMIT_SECONDS": "700"},
            "SOFT_TIME_LIMIT_SECONDS must be below",
        ),
        ({"MARLIN_GENERATION_TIME_LIMIT_SECONDS": "3600"}, "and that below 3600"),
        (
            {"MARLIN_GENERATION_TIME_LIMIT_SECONDS": "900"},
            "STALE_SECONDS must exceed MARLIN_GENERATION_TIME_LIMIT_SECONDS",
        ),
    ],
)
def test_values_that_cannot_work_stop_start_up(overrides, message):
    result = _load_settings(**overrides)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr
