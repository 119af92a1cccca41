"""The embedded default runs on SQLite, where the dashboard aggregates are not kept
(reviews.aggregates): migrating, accepting a task and reading every page that reads the
aggregates on PostgreSQL must work there, from scratch."""

import json
import subprocess
import sys
from pathlib import Path

from tests.sqlite_shell import sqlite_shell_env

ROOT = Path(__file__).resolve().parents[2]

READ_EVERY_COUNTED_PAGE = """
import json
import django
django.setup()
from reviews import aggregates, dashboard, leaderboard, quality_agreement, quality_audits
from tasks.models import Project
from tasks.pool import _judged_wins
project = Project.objects.get()
aggregates.aggregates_rebuild()
board = dashboard.dashboard(project=project)
whole = dashboard.dashboard()
print(json.dumps({
    "kept": aggregates.aggregates_kept(),
    "judged": board.judged_turns,
    "whole": whole.judged_turns,
    "decisions": board.decisions,
    "models": len(leaderboard.leaderboard(project=project).rows),
    "pairs": quality_agreement.agreement_tables(project=project).overall.pairs,
    "rates": len(quality_audits.reviewer_overturn_rates(project=project)),
    "wins": sum(_judged_wins(project).values()),
}))
"""


def test_sqlite_migrates_accepts_and_reads_the_dashboard_from_scratch(tmp_path):
    # The demo's repositories are cloned from port 9; nothing needs to listen there.
    env = sqlite_shell_env(
        tmp_path, DJANGO_SETTINGS_MODULE="marlin.settings.local", MARLIN_DEMO_GIT_PORT="9"
    )

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, f"{args}\n{done.stderr[-3000:]}"
        return done.stdout

    run("manage.py", "migrate", "--noinput", "-v", "0")
    # The demo accepts its task through review_decide, the aggregates' writer.
    run("manage.py", "demo_setup", "--git-port", "9")
    figures = json.loads(run("-c", READ_EVERY_COUNTED_PAGE).splitlines()[-1])

    assert figures["kept"] is False
    # The demo's two judged turns, counted from the judgements themselves.
    assert figures["judged"] == figures["whole"] == 2
    assert figures["decisions"] >= 1
    assert figures["models"] >= 2
    assert figures["pairs"] == 0
    assert figures["rates"] == 0
    # Adaptive pairing counts the accepted turns too (one game each, a tie half each way).
    assert figures["wins"] == 2.0
