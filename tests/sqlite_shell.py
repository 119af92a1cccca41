"""The environment of a developer's shell running Marlin on its embedded SQLite default:
none of the test run's settings, services or queues, a database file and a var folder in a
temporary folder of the test's own."""

from __future__ import annotations

import os
from pathlib import Path


def sqlite_shell_env(folder: Path, **extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "MARLIN_", "CELERY_"))
        and name not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{folder / 'marlin.sqlite3'}",
        MARLIN_VAR_DIR=str(folder / "var"),
        HF_HOME=str(folder / "huggingface"),
        HF_DATASETS_OFFLINE="1",
        **extra,
    )
    return env
