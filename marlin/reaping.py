"""Shared by the reapers: rows waiting in QUEUED for a job, and files a dead job left."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet

from marlin import health
from repos import git_client


def resend_stale_queued(queued: QuerySet, *, now: datetime, send: Callable[[int], object]) -> int:
    """Send again the job of every row of `queued` that lost its message; returns how many.

    A row QUEUED past MARLIN_QUEUED_STALE_SECONDS lost its message (a broker outage after
    commit). When the broker's queue is empty, a row QUEUED past the shorter
    MARLIN_QUEUED_LOST_SECONDS cannot be waiting its turn either: the broker lost it (a
    Redis restarted without its data), so it is sent without waiting minutes. A message
    sent twice is harmless: the job's claim lets only one run. The row's updated_at moves
    on once sent, so the next sweep does not send it again a minute later.
    """
    waiting = health.queued_job_count(settings.CELERY_TASK_DEFAULT_QUEUE)
    grace = (
        settings.MARLIN_QUEUED_LOST_SECONDS
        if waiting == 0
        else settings.MARLIN_QUEUED_STALE_SECONDS
    )
    stale = queued.filter(updated_at__lt=now - timedelta(seconds=grace)).values_list(
        "pk", flat=True
    )
    count = 0
    for pk in stale:
        if not health.job_send(lambda pk=pk: send(pk)):
            break  # the broker is down: the next sweep tries again
        queued.filter(pk=pk).update(updated_at=now)
        count += 1
    return count


def remove_stale_worktrees(*, older_than_seconds: int | None = None) -> int:
    """Delete agent checkouts (`marlin-worktree-*` in the temp folder) left by a dead job.

    A live job removes its own checkout in a `finally`; one killed outright (OOM, SIGKILL)
    cannot. A checkout older than the generation job's stale limit has no job behind it.
    Symlinks inside are removed, never followed. Returns how many were removed.
    """
    limit = older_than_seconds or settings.MARLIN_GENERATION_STALE_SECONDS
    cutoff = time.time() - limit
    removed = 0
    for path in Path(tempfile.gettempdir()).glob(f"{git_client.WORKTREE_PREFIX}*"):
        with suppress(FileNotFoundError):
            if path.is_dir() and not path.is_symlink() and path.lstat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
    return removed
