from __future__ import annotations

import time
from pathlib import Path

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from marlin.exceptions import ApplicationError
from repos.catalogue_imports import (
    catalogue_import_execute,
    catalogue_import_resume,
    catalogue_import_start,
)
from repos.models import CatalogueImport

# Progress lines are printed at most this often.
_PROGRESS_EVERY_SECONDS = 1.0


class Command(BaseCommand):
    help = (
        "Import the repository catalogue from a file of GitHub API repository objects "
        "(JSON array or JSONL) or a CSV with at least a full_name column. The file is stored "
        "and imported in batches as an upload is, here in this process with its progress "
        "shown (or by a worker with --background); --resume ID goes on with a failed import."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", nargs="?", help="the .json, .jsonl or .csv file")
        parser.add_argument(
            "--background", action="store_true", help="queue it for a worker and return"
        )
        parser.add_argument(
            "--resume", type=int, metavar="ID", help="go on with the failed import ID"
        )
        parser.add_argument(
            "--from-start", action="store_true", help="with --resume: read the file again"
        )

    def handle(self, *args, **options) -> None:
        if options["resume"]:
            job = self._resume(
                options["resume"],
                from_start=options["from_start"],
                background=options["background"],
            )
        elif options["path"]:
            job = self._start(Path(options["path"]), background=options["background"])
        else:
            raise CommandError("Name a file to import, or --resume ID.")
        if options["background"]:
            self.stdout.write(f"Queued catalogue import {job.pk} ({job.filename}).")
            return
        last = [0.0]

        def progress(job: CatalogueImport) -> None:
            if job.is_terminal or time.monotonic() - last[0] >= _PROGRESS_EVERY_SECONDS:
                last[0] = time.monotonic()
                self.stdout.write(
                    f"{job.percent:3d}% of {job.size_bytes:,} bytes: {job.rows_read:,} rows "
                    f"read, {job.rows_imported:,} imported, {job.rows_rejected:,} rejected"
                )

        result = catalogue_import_execute(import_id=job.pk, on_progress=progress)
        if result is None:
            raise CommandError(f"Catalogue import {job.pk} is being run by a worker already.")
        self._report(result)

    def _start(self, path: Path, *, background: bool) -> CatalogueImport:
        try:
            with path.open("rb") as handle:
                return catalogue_import_start(
                    by=None, upload=File(handle), filename=path.name, enqueue=background
                )
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}") from exc
        except ApplicationError as exc:
            for row in exc.extra.get("rejected", []):
                self.stderr.write(f"line {row['line']}: {row['reason']}")
            raise CommandError(exc.message) from exc

    def _resume(self, pk: int, *, from_start: bool, background: bool) -> CatalogueImport:
        job = CatalogueImport.objects.filter(pk=pk).first()
        if job is None:
            raise CommandError(f"No catalogue import {pk}.")
        try:
            return catalogue_import_resume(
                catalogue_import=job, from_start=from_start, enqueue=background
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc

    def _report(self, job: CatalogueImport) -> None:
        for line, reason in job.rejections:
            self.stderr.write(f"line {line}: {reason}")
        if job.rows_rejected > len(job.rejections):
            self.stderr.write(
                f"… and {job.rows_rejected - len(job.rejections)} more rejected rows."
            )
        if job.status == CatalogueImport.Status.FAILED:
            raise CommandError(f"Catalogue import {job.pk} failed: {job.error}")
        self.stdout.write(
            f"Imported {job.rows_imported} repositories ({job.rows_created} new, "
            f"{job.rows_updated} updated); rejected {job.rows_rejected} rows."
        )
