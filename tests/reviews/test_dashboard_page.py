"""The dashboard's figures are gathered once (reviews.dashboard_page) for its page and API;
the queue's filters are read once (QueueFilterForm.filters) for its page and API."""

from __future__ import annotations

import dataclasses

import pytest

from reviews.dashboard_page import DashboardPage, dashboard_page_figures
from reviews.forms import QueueFilterForm
from reviews.quality_flags import SORT_BY_FLAGS
from tasks.models import Task

pytestmark = pytest.mark.django_db


def test_without_a_project_there_is_no_leaderboard():
    page = dashboard_page_figures(project=None)
    assert page.project is None
    assert page.leaderboard is None
    assert page.board.judged_turns == 0
    assert page.gold_accuracy == () and page.overturn_rates == ()


def test_a_project_has_its_leaderboard(project):
    page = dashboard_page_figures(project=project)
    assert page.project == project
    assert page.leaderboard is not None and page.leaderboard.project == project


def test_the_figures_are_frozen(project):
    page = dashboard_page_figures(project=project)
    with pytest.raises(dataclasses.FrozenInstanceError):
        page.project = None  # type: ignore[misc]
    assert isinstance(page, DashboardPage)


def test_the_queue_filters_are_the_selector_arguments(project):
    form = QueueFilterForm(
        {"project": project.pk, "kind": Task.Kind.BUG_FIX, "flag": "fast", "sort": SORT_BY_FLAGS}
    )
    assert form.is_valid(), form.errors
    assert form.filters() == {
        "project_id": project.pk,
        "repository_id": None,
        "kind": Task.Kind.BUG_FIX,
        "flag": "fast",
        "sort": SORT_BY_FLAGS,
    }


def test_empty_queue_filters_are_the_selector_defaults():
    form = QueueFilterForm({})
    assert form.is_valid()
    assert form.filters() == {
        "project_id": None,
        "repository_id": None,
        "kind": "",
        "flag": "",
        "sort": "",
    }
