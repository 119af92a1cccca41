from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from marlin.exceptions import ApplicationError
from repos.services import repository_import

MAX_IMPORT_BYTES = 512 * 1024 * 1024


class Command(BaseCommand):
    help = (
        "Import the repository catalogue from a file of GitHub API repository objects "
        "(JSON array or JSONL) or a CSV with at least a full_name column."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", help="the .json, .jsonl or .csv file")

    def handle(self, *args, **options) -> None:
        path = Path(options["path"])
        try:
            if path.stat().st_size > MAX_IMPORT_BYTES:
                raise CommandError(f"{path} is larger than {MAX_IMPORT_BYTES // 2**20} MiB.")
            content = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}") from exc
        try:
            report = repository_import(content=content, filename=path.name)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        for line, reason in report.rejected:
            self.stderr.write(f"line {line}: {reason}")
        self.stdout.write(
            f"Imported {report.imported} repositories ({report.created} new, {report.updated} "
            f"updated); rejected {len(report.rejected)} rows."
        )
