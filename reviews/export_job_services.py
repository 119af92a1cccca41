"""Export jobs: a dataset export written by a worker to the exports storage, with progress."""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from django.core.files import File
from django.db import transaction

from marlin.exceptions import ApplicationError, InvalidTransition, PermissionDeniedError
from marlin.permissions import can_export
from marlin.threads import BehindWriter
from reviews import exports
from reviews.export_filters import ExportFilters, check_format
from reviews.models import ExportJob
from tasks.models import Project

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

# Progress is written at most this often, so a fast export is not slowed by its own updates.
PROGRESS_EVERY_SECONDS = 0.5


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: `records` records in `size_bytes` bytes hashing to `sha256`,
    made from `considered` judged turns; `left_out` counts the turns left out, by reason."""

    records: int
    size_bytes: int
    sha256: str
    considered: int
    left_out: dict[str, int] = field(default_factory=dict)


# Reasons (as reviews.exports names them) that read better with other words before a count;
# any other reason is shown as "<count> <reason>".
_LEFT_OUT_WORDS = {
    "ties": ("tie", "ties"),
    "identical candidates": ("with identical candidates", "with identical candidates"),
    "candidates sent different prompts": (
        "whose candidates were sent different prompts",
        "whose candidates were sent different prompts",
    ),
}
NO_RECORDS = "0 records match these filters"


def left_out_text(left_out: Mapping[str, int]) -> str:
    """The judged turns an export left out, in words: "left out: 3 ties, 1 with identical
    candidates" (largest count first), or "left out: none". The command, the export page
    and the API all say it this way."""
    counts = sorted(
        ((n, reason) for reason, n in left_out.items() if n), key=lambda c: (-c[0], c[1])
    )
    if not counts:
        return "left out: none"
    parts = []
    for n, reason in counts:
        one, many = _LEFT_OUT_WORDS.get(reason, (reason, reason))
        parts.append(f"{n} {one if n == 1 else many}")
    return f"left out: {', '.join(parts)}"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def records_text(*, records: int, considered: int, left_out: Mapping[str, int]) -> str:
    """How many records an export holds and what it left out, or, for none, that nothing
    matches: "8 records from 11 judged turns; left out: 3 ties" /
    "0 records match these filters (3 judged turns; left out: 3 ties)"."""
    turns = _count(considered, "judged turn")
    if records == 0:
        if not considered:
            return f"{NO_RECORDS} (no judged turns)"
        return f"{NO_RECORDS} ({turns}; {left_out_text(left_out)})"
    return f"{_count(records, 'record')} from {turns}; {left_out_text(left_out)}"


def summary_text(summary: ExportSummary, *, fmt: str) -> str:
    """The command's last line: what it exported and left out, with the bytes' size and hash.
    (It says "judgements" for the judged turns: "turns" is the progress bar's word.)"""
    return (
        f"Exported {_count(summary.records, 'line')} ({fmt}) from "
        f"{_count(summary.considered, 'judgement')}; {left_out_text(summary.left_out)}; "
        f"{_count(summary.size_bytes, 'byte')}, sha256 {summary.sha256}."
    )


def export_job_message(job: ExportJob) -> str:
    """A finished job's records_text; empty until the job has succeeded."""
    if job.status != ExportJob.Status.SUCCEEDED:
        return ""
    return records_text(records=job.records, considered=job.total or 0, left_out=job.left_out)


def write_export(
    out: IO[bytes],
    *,
    fmt: str,
    filters: ExportFilters,
    progress: Callable[[int], None] | None = None,
    prompt_style: str = ExportJob.PromptStyle.MODEL,
) -> ExportSummary:
    """Stream an export into a binary file and sum up what it wrote and left out.

    Each block is written and hashed on another thread while the next one is made (both
    release the GIL for blocks this size).
    """
    digest = hashlib.sha256()
    records = size = considered = 0
    left_out: Counter[str] = Counter()

    def sink(data: bytes) -> None:
        out.write(data)
        digest.update(data)

    blocks = exports.export_blocks(
        fmt=fmt, filters=filters, progress=progress, prompt_style=prompt_style
    )
    with closing(blocks), BehindWriter(sink) as writer:
        for block in blocks:
            writer.put(block.data)
            records += block.records
            considered += block.considered
            left_out.update(block.left_out)
            size += len(block.data)
    return ExportSummary(
        records=records,
        size_bytes=size,
        sha256=digest.hexdigest(),
        considered=considered,
        left_out=dict(sorted(left_out.items())),
    )


def _rubric_axes() -> set[str]:
    return {axis["key"] for project in Project.objects.all() for axis in project.rubric_axes}


def export_job_start(
    *,
    by: User,
    fmt: str,
    filters: ExportFilters,
    prompt_style: str = ExportJob.PromptStyle.MODEL,
) -> ExportJob:
    """Queue an export; the worker starts it once this transaction commits."""
    if not can_export(by):
        raise PermissionDeniedError("Only admins can export datasets.")
    check_format(fmt, axes=_rubric_axes())
    if (
        filters.project_id is not None
        and not Project.objects.filter(pk=filters.project_id).exists()
    ):
        raise ApplicationError("No such project.")
    if prompt_style not in ExportJob.PromptStyle.values:
        raise ApplicationError(
            f"Unknown prompt style {prompt_style!r}: use {' or '.join(ExportJob.PromptStyle.values)}."
        )
    job = ExportJob.objects.create(
        requested_by=by, format=fmt, filters=filters.to_json(), prompt_style=prompt_style
    )
    from reviews.jobs import export_job_run

    # robust: if the broker is down the job stays QUEUED and can be started again.
    transaction.on_commit(lambda: export_job_run.delay(job.pk), robust=True)
    return job


def export_job_execute(job_id: int) -> ExportJob | None:
    """Run a queued export to the end. Running it twice (a redelivery) writes the same file."""
    job = ExportJob.objects.filter(pk=job_id).first()
    if job is None:
        return None
    try:
        # A redelivered job (its worker died) starts over: RUNNING -> RUNNING.
        job.start()
    except InvalidTransition:
        return None  # finished already, or another delivery moved it first
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
            summary = write_export(
                spool,
                fmt=job.format,
                filters=filters,
                progress=progress,
                prompt_style=job.prompt_style,
            )
            spool.seek(0)
            if job.file:
                job.file.delete(save=False)  # a redelivered job replaces its own file
            name = job.filename
            job.file.save(name, File(spool), save=False)
    except Exception as exc:
        logger.exception("export %s failed", job.pk)
        job.fail(error=f"The export failed: {type(exc).__name__}.")
        raise
    job.succeed(
        file=job.file.name,
        done=total,
        records=summary.records,
        left_out=summary.left_out,
        size_bytes=summary.size_bytes,
        sha256=summary.sha256,
    )
    job.refresh_from_db()
    return job
