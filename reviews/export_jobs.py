"""Export jobs: a dataset export written by a worker to the exports storage, with progress."""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from typing import IO, Any

from django.core.files import File
from django.db import transaction
from django.utils import timezone

from marlin.exceptions import ApplicationError, PermissionDeniedError
from marlin.permissions import can_export
from marlin.threads import BehindWriter
from reviews import exports
from reviews.export_filters import ExportFilters, check_format
from reviews.models import ExportJob
from tasks.models import Project

logger = logging.getLogger(__name__)

# Progress is written at most this often, so a fast export is not slowed by its own updates.
PROGRESS_EVERY_SECONDS = 0.5


def write_export(
    out: IO[bytes],
    *,
    fmt: str,
    filters: ExportFilters,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int, str]:
    """Stream an export into a binary file: (records written, bytes, sha256 of the bytes).

    Each block is written and hashed on another thread while the next one is made (both
    release the GIL for blocks this size).
    """
    digest = hashlib.sha256()
    records = size = 0

    def sink(data: bytes) -> None:
        out.write(data)
        digest.update(data)

    blocks = exports.export_blocks(fmt=fmt, filters=filters, progress=progress)
    with closing(blocks), BehindWriter(sink) as writer:
        for block in blocks:
            writer.put(block.data)
            records += block.records
            size += len(block.data)
    return records, size, digest.hexdigest()


def _rubric_axes() -> set[str]:
    return {axis["key"] for project in Project.objects.all() for axis in project.rubric_axes}


def export_job_start(*, by: Any, fmt: str, filters: ExportFilters) -> ExportJob:
    """Queue an export; the worker starts it once this transaction commits."""
    if not can_export(by):
        raise PermissionDeniedError("Only admins can export datasets.")
    check_format(fmt, axes=_rubric_axes())
    if (
        filters.project_id is not None
        and not Project.objects.filter(pk=filters.project_id).exists()
    ):
        raise ApplicationError("No such project.")
    job = ExportJob.objects.create(requested_by=by, format=fmt, filters=filters.to_json())
    from reviews.jobs import export_job_run

    # robust: if the broker is down the job stays QUEUED and can be started again.
    transaction.on_commit(lambda: export_job_run.delay(job.pk), robust=True)
    return job


def export_job_execute(job_id: int) -> ExportJob | None:
    """Run a queued export to the end. Running it twice (a redelivery) writes the same file."""
    now = timezone.now()
    claimed = ExportJob.objects.filter(
        pk=job_id, status__in=(ExportJob.Status.QUEUED, ExportJob.Status.RUNNING)
    ).update(status=ExportJob.Status.RUNNING, started_at=now, updated_at=now, done=0)
    if not claimed:
        return None
    job = ExportJob.objects.get(pk=job_id)
    filters = ExportFilters.from_json(job.filters)
    total = exports.judged_turn_count(filters)
    ExportJob.objects.filter(pk=job.pk).update(total=total)
    last = [0.0]

    def progress(done: int) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY_SECONDS:
            last[0] = time.monotonic()
            ExportJob.objects.filter(pk=job.pk).update(done=done)

    try:
        with tempfile.TemporaryFile() as spool:
            records, size, sha = write_export(
                spool, fmt=job.format, filters=filters, progress=progress
            )
            spool.seek(0)
            if job.file:
                job.file.delete(save=False)  # a redelivered job replaces its own file
            name = job.filename
            job.file.save(name, File(spool), save=False)
    except Exception as exc:
        logger.exception("export %s failed", job.pk)
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportJob.Status.FAILED,
            error=f"The export failed: {type(exc).__name__}.",
            finished_at=timezone.now(),
            updated_at=timezone.now(),
        )
        raise
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportJob.Status.SUCCEEDED,
        file=job.file.name,
        done=total,
        records=records,
        size_bytes=size,
        sha256=sha,
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
    job.refresh_from_db()
    return job
