"""The embedded default's broker (kombu's filesystem transport) hands a job over promptly.

kombu polls the folder every `polling_interval` seconds, 1 s unless told otherwise: a
generation then waited up to a second before a worker saw it. What is checked is the
interval kombu itself ends up with, in a fresh process started as `scripts/dev.py run`
starts the worker (no REDIS_URL, no CELERY_BROKER_URL). bench/generation.py --embedded
measures the effect.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
from marlin.celery import app
with app.connection_for_read() as connection:
    print(connection.transport.driver_type, connection.transport.polling_interval)
"""


def _broker_as_started(tmp_path: Path) -> tuple[str, float]:
    clean = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "MARLIN_", "CELERY_")) and k not in ("REDIS_URL",)
    }  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**clean, "DJANGO_SETTINGS_MODULE": "marlin.settings.local",
             "MARLIN_VAR_DIR": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    driver, interval = result.stdout.split()
    return driver, float(interval)


def test_the_filesystem_broker_is_polled_at_least_ten_times_a_second(tmp_path):
    driver, interval = _broker_as_started(tmp_path)
    assert driver == "filesystem"
    assert interval <= 0.1
