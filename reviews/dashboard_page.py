"""What the dashboard shows, computed in one place for its page and its API; each only formats."""

from __future__ import annotations

from dataclasses import dataclass

from reviews import dashboard, leaderboard, quality_agreement, quality_audits, quality_gold
from reviews.dashboard import Dashboard
from reviews.leaderboard import Leaderboard
from reviews.quality_agreement import Agreement
from reviews.quality_audits import OverturnRate
from reviews.quality_gold import GoldAccuracy
from tasks.models import Project


@dataclass(frozen=True)
class DashboardPage:
    project: Project | None
    board: Dashboard
    # dashboard.chart_data(board): what the page's charts draw, and the API's base figures
    chart_data: dict
    # None without a project: a leaderboard ranks one project's pool
    leaderboard: Leaderboard | None
    agreement: Agreement
    # in gold_accuracy_by_contractor's order; the page sorts by username
    gold_accuracy: tuple[GoldAccuracy, ...]
    overturn_rates: tuple[OverturnRate, ...]


def dashboard_page_figures(*, project: Project | None) -> DashboardPage:
    """The dashboard's figures for the project (None: every project)."""
    board = dashboard.dashboard(project=project)
    return DashboardPage(
        project=project,
        board=board,
        chart_data=dashboard.chart_data(board),
        leaderboard=leaderboard.leaderboard(project=project) if project else None,
        agreement=quality_agreement.agreement(project=project),
        gold_accuracy=tuple(quality_gold.gold_accuracy_by_contractor(project=project).values()),
        overturn_rates=tuple(quality_audits.reviewer_overturn_rates(project=project)),
    )
