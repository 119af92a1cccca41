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

from repos import git_client


def resend_stale_queued(queued: QuerySet, *, now: datetime, send: Callable[[int], object]) -> int:
    """Send again the job of every row of `queued` untouched for MARLIN_QUEUED_STALE_SECONDS.

    Such a row lost its message (a broker outage after commit). Its updated_at moves on
    first, so the next sweep does not send it again a minute later.
    """
    stale = queued.filter(
        updated_at__lt=now - timedelta(seconds=settings.MARLIN_QUEUED_STALE_SECONDS)
    ).values_list("pk", flat=True)
    count = 0
    for pk in stale:
        queued.model.objects.filter(pk=pk).update(updated_at=now)
        send(pk)
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
