from __future__ import annotations

import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from reviews import exports
from reviews.export_job_services import ExportSummary, records_text, summary_text, write_export
from reviews.forms import ExportForm
from reviews.models import ExportJob
from tasks.models import ModelEndpoint, Project


class Command(BaseCommand):
    help = (
        "Export the preference dataset (accepted tasks by default), one record per judged "
        "turn, to a file or standard output."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", help="project name (default: every project)")
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")
        parser.add_argument(
            "--format",
            default="native",
            help="native (JSONL, everything), trl, openai, csv, or criterion:<axis> (TRL on one "
            "rubric axis)",
        )
        parser.add_argument(
            "--include-unaccepted", action="store_true", help="also export tasks not yet accepted"
        )
        parser.add_argument("--submitted-from", help="first day (YYYY-MM-DD) of submission")
        parser.add_argument("--submitted-to", help="last day (YYYY-MM-DD) of submission")
        parser.add_argument(
            "--repository", action="append", default=[], help="owner/name; may be repeated"
        )
        parser.add_argument("--kind", action="append", default=[], help="task kind; repeatable")
        parser.add_argument(
            "--endpoint", action="append", default=[], help="model endpoint name; repeatable"
        )
        parser.add_argument("--contractor", help="only this contractor's tasks (username)")
        parser.add_argument(
            "--min-strength", type=int, default=0, help="0-3: minimum |preference| kept"
        )
        parser.add_argument(
            "--evidence",
            default="",
            help="agrees: only turns whose evidence (tests fixed minus broken) agrees with the "
            "preference; disagrees: only those where it disagrees (default: every turn)",
        )
        parser.add_argument(
            "--min-contractor-agreement",
            help="0-1: only tasks of contractors whose preference direction matched the other "
            "rater's on at least this share of their turns judged twice (contractors with none "
            "are left out)",
        )
        parser.add_argument(
            "--min-gold-accuracy",
            help="0-1: only tasks of contractors right on at least this share of their gold "
            "turns (contractors with none graded are left out)",
        )
        parser.add_argument(
            "--prompt-style",
            default=ExportJob.PromptStyle.MODEL,
            help="the prompt in pairwise formats (trl, openai, criterion:<axis>): model (what "
            "the model was sent: system message, repository context, conversation; the "
            "default) or bare (the contractor's prompts only)",
        )
        parser.add_argument(
            "--progress",
            action="store_true",
            default=None,
            help="show progress on standard error (default: when it is a terminal)",
        )
        parser.add_argument("--no-progress", action="store_false", dest="progress")

    def handle(self, *args, **options) -> None:
        form = ExportForm(self._form_data(options))
        if not form.is_valid():
            problems = "; ".join(
                f"{name}: {' '.join(errors)}" if name != "__all__" else " ".join(errors)
                for name, errors in form.errors.items()
            )
            raise CommandError(f"Cannot export: {problems}")
        fmt, filters = form.cleaned_data["format"], form.filters()
        prompt_style = form.cleaned_data["prompt_style"]
        show = options["progress"] if options["progress"] is not None else self.stderr.isatty()
        progress = self._progress_bar(exports.judged_turn_count(filters)) if show else None

        def export(out) -> ExportSummary:
            return write_export(
                out, fmt=fmt, filters=filters, progress=progress, prompt_style=prompt_style
            )

        if not options["output"]:
            summary = export(sys.stdout.buffer)
            sys.stdout.flush()
        else:
            # Written beside the target and renamed at the end: a failed export leaves no half
            # file, and an export of nothing leaves no file (nor replaces an older one).
            target = Path(options["output"])
            partial = target.with_name(target.name + ".partial")
            try:
                with partial.open("wb") as out:
                    summary = export(out)
                if summary.records:
                    os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
        if show:
            self.stderr.write("")
        if not summary.records:
            # Exit status 1, so a script does not train on an empty file.
            raise CommandError(
                records_text(records=0, considered=summary.considered, left_out=summary.left_out)
                + "."
            )
        self.stderr.write(summary_text(summary, fmt=fmt))

    def _form_data(self, options: dict) -> dict:
        data = {
            "format": options["format"],
            "include_unaccepted": options["include_unaccepted"],
            "submitted_from": options["submitted_from"] or "",
            "submitted_to": options["submitted_to"] or "",
            "repositories": ",".join(options["repository"]),
            "kinds": options["kind"],
            "contractor": options["contractor"] or "",
            "min_strength": options["min_strength"],
            "evidence": options["evidence"],
            "min_contractor_agreement": options["min_contractor_agreement"] or "",
            "min_gold_accuracy": options["min_gold_accuracy"] or "",
            "prompt_style": options["prompt_style"],
        }
        if options["project"]:
            project = Project.objects.filter(name=options["project"]).first()
            if project is None:
                raise CommandError(f"No project named {options['project']!r}.")
            data["project"] = project.pk
        if options["endpoint"]:
            found = dict(
                ModelEndpoint.objects.filter(name__in=options["endpoint"]).values_list("name", "pk")
            )
            missing = sorted(set(options["endpoint"]) - set(found))
            if missing:
                raise CommandError(f"No model endpoint named {', '.join(missing)}.")
            data["endpoints"] = list(found.values())
        return data

    def _progress_bar(self, total: int):
        width = 30

        def show(done: int) -> None:
            filled = width * done // total if total else width
            bar = f"[{'#' * filled}{'.' * (width - filled)}]"
            self.stderr.write(f"\r{bar} {done}/{total} turns", ending="")
            self.stderr.flush()

        return show
