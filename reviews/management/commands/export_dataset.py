from __future__ import annotations

import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from reviews.exports import FORMATS, export_lines
from tasks.models import Project


class Command(BaseCommand):
    help = "Export a project's preference dataset as native JSONL (accepted tasks by default)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", help="project name (default: every project)")
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")
        parser.add_argument(
            "--include-unaccepted", action="store_true", help="also export tasks not yet accepted"
        )
        parser.add_argument(
            "--format",
            default="native",
            help="native (JSONL, everything), trl, openai, csv, or criterion:<axis> (TRL on one "
            "rubric axis)",
        )

    def handle(self, *args, **options) -> None:
        project = None
        if options["project"]:
            try:
                project = Project.objects.get(name=options["project"])
            except Project.DoesNotExist as exc:
                raise CommandError(f"No project named {options['project']!r}.") from exc
        fmt = options["format"]
        if fmt not in FORMATS and not (fmt.startswith("criterion:") and len(fmt) > 10):
            raise CommandError(
                f"Unknown format {fmt!r}: use one of {', '.join(FORMATS)} or criterion:<axis>."
            )
        lines = export_lines(
            fmt=fmt, project=project, accepted_only=not options["include_unaccepted"]
        )
        if not options["output"]:
            count = _write(lines, sys.stdout)
        else:
            # Written beside the target and renamed at the end: a failed export leaves no half file.
            target = Path(options["output"])
            partial = target.with_name(target.name + ".partial")
            try:
                with partial.open("w", encoding="utf-8") as out:
                    count = _write(lines, out)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
        self.stderr.write(f"Exported {count} lines ({fmt}).")


def _write(lines, out) -> int:
    count = 0
    for line in lines:
        out.write(line)
        count += 1
    return count
