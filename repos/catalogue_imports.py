"""Catalogue imports: an uploaded file stored as it arrives, checked at its head while the
uploader waits, and imported by a worker in batches with progress that can be resumed.

The admin, the API and the `import_repositories` command all go through
catalogue_import_start and catalogue_import_execute. Memory stays flat in the file's size:
the file is never read whole (repos.importing reads it one row at a time) and at most one
batch of rows is held, plus two batches' worth read ahead. Each batch is written by
repos.catalogue_copy (on PostgreSQL: COPY into a staging table, one set-based upsert).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import PurePath
from typing import IO, TYPE_CHECKING

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from marlin.exceptions import ApplicationError, InvalidTransition
from marlin.reaping import resend_stale_queued
from repos import catalogue_copy, importing, jobs, selectors
from repos.models import CatalogueImport

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv")
# Checked while the uploader waits: the whole of a small file, the head of a large one.
SAMPLE_BYTES = 1024 * 1024
# Rejected rows kept on the job (all of them are counted).
REJECTIONS_KEPT = 100
# Rejected rows listed in a 400 answer.
REJECTIONS_SHOWN = 50
# A batch commits when it holds this many good rows, or this many rows were read for it
# (a long run of bad rows must still move the committed offset on).
BATCH_ROWS = 1000
_BATCH_READ = 5 * BATCH_ROWS


class ImportTooLarge(ApplicationError):
    status_code = 413


class ImportRejected(ApplicationError):
    """Not one row of the part of the file that was checked can be imported; nothing was
    stored. `extra["rejected"]` lists the first rows and why."""


@dataclass
class ImportReport:
    """What an import did: counts, and every rejected row with its line and reason."""

    created: int = 0
    updated: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return self.created + self.updated


def max_import_bytes() -> int:
    return settings.MARLIN_IMPORT_MAX_MB * 1024 * 1024


def too_large_message(filename: str, size: int) -> str:
    return (
        f"{filename} is {size / 2**20:.1f} MiB; catalogue files may be at most "
        f"{settings.MARLIN_IMPORT_MAX_MB} MiB."
    )


# --- Upserting rows ------------------------------------------------------------------------


def repository_upsert_batch(
    *, rows: dict[str, importing.RepositoryRow], writing: threading.Event | None = None
) -> tuple[int, int]:
    """Upsert one batch of checked rows by full_name; returns (created, updated).

    Catalogue data is overwritten; enabled flags, quotas, clone state and task counts of
    existing rows are kept. Writing the same batch twice leaves the same rows (idempotent).
    """
    if not rows:
        return 0, 0
    return catalogue_copy.repository_upsert_rows(rows=rows.values(), writing=writing)


def repository_import_stream(*, stream: IO[bytes], filename: str) -> ImportReport:
    """Upsert the catalogue from a file, all rows in one transaction, while the caller waits.

    For files small enough to be handled in a request or a test; uploads go through
    catalogue_import_start. The good rows go to the database as they are read (on
    PostgreSQL one COPY and one upsert for the whole file); a name repeated in the file is
    written once, from its last row. Raises ApplicationError (and writes nothing) when the
    file as a whole cannot be read.
    """
    report = ImportReport()

    def good_rows() -> Iterator[importing.RepositoryRow]:
        for parsed in importing.parse_stream(
            stream, filename=filename, allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES
        ):
            if parsed.row is None:
                report.rejected.append((parsed.line, parsed.error or "invalid row"))
            else:
                yield parsed.row

    try:
        with transaction.atomic():
            _add_counts(report, catalogue_copy.repository_upsert_rows(rows=good_rows()))
    except importing.RowError as exc:
        raise ApplicationError(f"Cannot import {filename}: {exc}") from exc
    transaction.on_commit(selectors.repository_languages_forget)
    return report


def _add_counts(report: ImportReport, counts: tuple[int, int]) -> None:
    report.created += counts[0]
    report.updated += counts[1]


# --- Starting an import --------------------------------------------------------------------


def _check_head(stream: IO[bytes], *, filename: str, size: int) -> None:
    """Read the first SAMPLE_BYTES (all of a small file) and refuse the file if it cannot
    be read there, holds no row, or not one of those rows can be imported."""
    good = bad = 0
    whole = True
    rejected: list[tuple[int, str]] = []
    try:
        for parsed in importing.parse_stream(
            stream, filename=filename, allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES
        ):
            if parsed.row is not None:
                good += 1
            else:
                bad += 1
                if len(rejected) < REJECTIONS_SHOWN:
                    rejected.append((parsed.line, parsed.error or "invalid row"))
            if parsed.end >= SAMPLE_BYTES:
                whole = parsed.end >= size
                break
    except importing.RowError as exc:
        raise ApplicationError(f"Cannot import {filename}: {exc}") from exc
    if good:
        return
    if not bad:
        raise ApplicationError(f"{filename} holds no repositories.")
    first_line, first_reason = rejected[0]
    what = (
        f"No row of {filename} can be imported: all {bad} rows were rejected"
        if whole
        else f"The first {bad} rows of {filename} were all rejected, so it was not imported"
    )
    raise ImportRejected(
        f"{what} (line {first_line}: {first_reason}).",
        extra={"rejected": [{"line": line, "reason": reason} for line, reason in rejected]},
    )


def catalogue_import_start(
    *, by: User, upload: File, filename: str, enqueue: bool = True
) -> CatalogueImport:
    """Check an uploaded catalogue file's head, store the file and queue its import.

    The file is streamed into storage (an upload Django spooled to disk is moved, not
    copied) and never read whole. Raises ImportTooLarge (413) above the size limit and
    ApplicationError / ImportRejected (400) when its head is unreadable or every row checked
    is bad; nothing is stored then. With enqueue=False the caller runs the import itself
    (the command does, through catalogue_import_execute).
    """
    name = PurePath(filename).name
    if not name.lower().endswith(SUFFIXES):
        raise ApplicationError("Upload a .json, .jsonl, .ndjson or .csv file.")
    size = upload.size or 0
    if size > max_import_bytes():
        raise ImportTooLarge(too_large_message(name, size))
    upload.seek(0)
    _check_head(upload, filename=name, size=size)
    upload.seek(0)
    stored = CatalogueImport._meta.get_field("file").storage.save(
        f"{timezone.now():%Y/%m}/{uuid.uuid4().hex}{PurePath(name).suffix.lower()}", upload
    )
    try:
        job = CatalogueImport.objects.create(
            requested_by=by if getattr(by, "pk", None) else None,
            filename=name,
            file=stored,
            size_bytes=size,
        )
    except Exception:
        CatalogueImport._meta.get_field("file").storage.delete(stored)
        raise
    if enqueue:
        _enqueue(job)
    return job


def _enqueue(job: CatalogueImport) -> None:
    # robust: with the broker down the row stays QUEUED and the reaper sends it again.
    transaction.on_commit(lambda: jobs.catalogue_import_run.delay(job.pk), robust=True)


def catalogue_import_resume(
    *, catalogue_import: CatalogueImport, from_start: bool = False, enqueue: bool = True
) -> CatalogueImport:
    """Queue a failed (or stalled) import again: it goes on from the last committed batch,
    or reads the whole file again with from_start. Rows already written are upserted again,
    never duplicated. Raises InvalidTransition (409) for a queued or finished import.

    A RUNNING import may be resumed too: its job, if still alive, loses its claim at its
    next batch and stops. With enqueue=False the caller runs it (the command does).
    """
    if not catalogue_import.file:
        raise ApplicationError("The file of this import is gone; upload it again.")
    catalogue_import.requeue(from_start=from_start)
    if enqueue:
        _enqueue(catalogue_import)
    return catalogue_import


# --- Running an import ---------------------------------------------------------------------


class _Superseded(Exception):
    """Another job took the import over (it was resumed, or reaped); this one stops."""


def catalogue_import_execute(
    *,
    import_id: int,
    job_id: str = "",
    on_progress: Callable[[CatalogueImport], None] | None = None,
) -> CatalogueImport | None:
    """Import a queued catalogue file to the end, in batches, from its committed offset.

    Each batch's rows commit together with the progress (rows read, created, updated,
    rejected; bytes read), guarded by the claim: a job that lost its claim rolls its batch
    back and stops. Ends SUCCEEDED (the stored file is deleted), or FAILED with a reason:
    the file cannot be read past a point (the rows before it stay imported), or no row at
    all could be imported. Returns None when the import was not this job's to run.
    """
    job = CatalogueImport.objects.filter(pk=import_id).first()
    if job is None:
        logger.warning("catalogue import %s does not exist", import_id)
        return None
    job_id = job_id or f"inline-{uuid.uuid4().hex}"
    try:
        job.claim(job_id=job_id)
    except InvalidTransition:
        logger.info("catalogue import %s is %s; not running it", job.pk, job.status)
        return None
    if on_progress:
        on_progress(job)
    if not job.file:
        _fail(job, "The uploaded file is gone; upload it again.")
        return job
    try:
        with job.file.storage.open(job.file.name, "rb") as stream:
            _import_batches(job, stream, job_id=job_id, on_progress=on_progress)
    except _Superseded:
        logger.info("catalogue import %s was taken over by another job", job.pk)
        return None
    except importing.RowError as exc:
        _fail(job, f"{exc}. The {job.rows_imported} rows before it were imported.")
        return job
    except FileNotFoundError:
        _fail(job, "The uploaded file is gone; upload it again.")
        return job
    except Exception as exc:
        logger.exception("catalogue import %s stopped", job.pk)
        _fail(
            job,
            f"The import stopped ({type(exc).__name__}) after line {job.line}; resume it to "
            "go on from there.",
        )
        raise
    transaction.on_commit(selectors.repository_languages_forget)
    if job.rows_imported == 0:
        first = f" (line {job.rejections[0][0]}: {job.rejections[0][1]})" if job.rejections else ""
        _fail(
            job,
            f"No row of {job.filename} could be imported: all {job.rows_rejected} rows were "
            f"rejected{first}.",
        )
        return job
    job.succeed()
    job.file.storage.delete(job.file.name)
    CatalogueImport.objects.filter(pk=job.pk).update(file="")
    job.file.name = ""
    if on_progress:
        on_progress(job)
    return job


def _fail(job: CatalogueImport, reason: str) -> None:
    try:
        job.fail(reason=reason)
    except InvalidTransition:
        logger.info("catalogue import %s was moved on by another job; not failing it", job.pk)


def _import_batches(
    job: CatalogueImport,
    stream: IO[bytes],
    *,
    job_id: str,
    on_progress: Callable[[CatalogueImport], None] | None,
) -> None:
    rows: dict[str, importing.RepositoryRow] = {}
    read = rejected = 0
    rejections = list(job.rejections)
    last: importing.ParsedLine | None = None
    # Set while a batch's upsert runs in the database: the reader checks the next rows then.
    writing = threading.Event()

    def commit() -> None:
        nonlocal rows, read, rejected
        created, updated = 0, 0
        with transaction.atomic():
            created, updated = repository_upsert_batch(rows=rows, writing=writing)
            changes = {
                "bytes_read": last.end if last else job.bytes_read,
                "line": last.line if last else job.line,
                "rows_read": job.rows_read + read,
                "rows_created": job.rows_created + created,
                "rows_updated": job.rows_updated + updated,
                "rows_rejected": job.rows_rejected + rejected,
                "rejections": rejections,
                "updated_at": timezone.now(),
            }
            matched = CatalogueImport.objects.filter(
                pk=job.pk, status=CatalogueImport.Status.RUNNING, job_id=job_id
            ).update(**changes)
            if matched != 1:
                raise _Superseded
        for name, value in changes.items():
            setattr(job, name, value)
        rows, read, rejected = {}, 0, 0
        if on_progress:
            on_progress(job)

    # The next rows are read and checked (in a thread) while a batch is being written;
    # closing() stops that thread before the file closes, however the loop ends.
    parsed_rows = importing.read_ahead(
        importing.parse_stream(
            stream,
            filename=job.filename,
            allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES,
            offset=job.bytes_read,
            line=job.line,
        ),
        gate=writing,
    )
    with closing(parsed_rows):
        for parsed in parsed_rows:
            last = parsed
            read += 1
            if parsed.row is None:
                rejected += 1
                if len(rejections) < REJECTIONS_KEPT:
                    rejections.append([parsed.line, parsed.error or "invalid row"])
            else:
                # A name repeated in the file: the last occurrence wins, as in an upsert.
                rows.pop(parsed.row.full_name, None)
                rows[parsed.row.full_name] = parsed.row
            if len(rows) >= BATCH_ROWS or read >= _BATCH_READ:
                commit()
    commit()


# --- Repair --------------------------------------------------------------------------------


def catalogue_import_reap_stale() -> int:
    """Resume imports whose worker died (RUNNING with no committed batch for
    MARLIN_IMPORT_STALE_SECONDS) and send again those left QUEUED (message lost).

    A stalled job that is in fact alive loses its claim at its next batch and stops, so
    the resumed one never races it. Returns how many imports were sent.
    """
    now = timezone.now()
    stale = CatalogueImport.objects.filter(
        status=CatalogueImport.Status.RUNNING,
        updated_at__lt=now - timedelta(seconds=settings.MARLIN_IMPORT_STALE_SECONDS),
    )
    count = 0
    for job in stale:
        try:
            with transaction.atomic():
                catalogue_import_resume(catalogue_import=job)
        except ApplicationError as exc:
            logger.info("catalogue import %s not resumed: %s", job.pk, exc.message)
            continue
        logger.warning("catalogue import %s stalled at line %s; resumed", job.pk, job.line)
        count += 1
    queued = CatalogueImport.objects.filter(status=CatalogueImport.Status.QUEUED)
    return count + resend_stale_queued(queued, now=now, send=jobs.catalogue_import_run.delay)
