from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from repos.highlighting import stylesheet


class Command(BaseCommand):
    help = "Write the Pygments theme to static/css/syntax.css (run after changing the theme)."

    def handle(self, *args, **options) -> None:
        target = Path(settings.BASE_DIR) / "static" / "css" / "syntax.css"
        target.write_text(stylesheet() + "\n")
        self.stdout.write(f"Wrote {target}")
