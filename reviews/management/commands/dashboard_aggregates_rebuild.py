from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from reviews.aggregates import aggregates_rebuild


class Command(BaseCommand):
    help = (
        "Recompute the dashboard aggregates (and the pair counts adaptive pairing reads) from "
        "every judgement, review and task. Safe while reviewers work: decisions wait for it."
    )

    def handle(self, *args, **options) -> None:
        started = time.perf_counter()
        aggregates_rebuild()
        self.stdout.write(f"Dashboard aggregates rebuilt in {time.perf_counter() - started:.1f} s.")
