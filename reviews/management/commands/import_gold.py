from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from marlin.exceptions import ApplicationError
from reviews.quality_gold import gold_turns_import


class Command(BaseCommand):
    help = (
        "Mark accepted turns gold from a JSON-lines file, all or none. Each line: "
        '{"task_id": 12, "turn": 1, "expected": -1, "score_ranges": {"A": {"correctness": [4, 5]}}}'
        " (expected: -1 A better, 0 about the same, 1 B better, in the turn's own slots)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="the JSON-lines file")
        parser.add_argument("--by", required=True, help="username of the admin marking them")

    def handle(self, *args, file: str, by: str, **options) -> None:
        admin = get_user_model().objects.filter(username=by).first()
        if admin is None:
            raise CommandError(f"No user {by!r}.")
        try:
            with open(file, encoding="utf-8") as lines:
                made = gold_turns_import(lines=lines, by=admin)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from exc
        except UnicodeDecodeError as exc:
            raise CommandError(f"{file} is not UTF-8 text.") from exc
        except ApplicationError as exc:
            raise CommandError(f"{exc.message} Nothing was imported.") from exc
        self.stdout.write(f"{len(made)} gold turn{'s' if len(made) != 1 else ''} imported.")
