from __future__ import annotations

import json

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from reviews import aggregates, dashboard
from tasks import services
from tasks.models import Candidate, Task
from tests.factories import ModelEndpointFactory, ProjectFactory
from tests.tasks.helpers import create_task, decide, generate_all, valid_scores


def _judged(*, project, repository, contractor, reviewer, winner: str | None, bounce=False):
    """An accepted task whose one turn prefers the candidate of endpoint `winner` (None: tie)."""
    task = generate_all(create_task(contractor=contractor, project=project, repository=repository))
    slots = dict(Candidate.objects.filter(turn__task=task).values_list("endpoint__name", "slot"))
    if winner is None:
        preference, scores = 0, valid_scores(project, a=3, b=3)
    elif slots[winner] == "A":
        preference, scores = -2, valid_scores(project, a=5, b=2)
    else:
        preference, scores = 2, valid_scores(project, a=2, b=5)
    judgement = {
        "preference": preference,
        "scores": scores,
        "justification": "Judged for the dashboard test.",
    }
    task = services.task_submit(task=task, by=contractor, **judgement)
    if bounce:
        decide(task, reviewer=reviewer, decision="BOUNCE", feedback="Check again.")
        services.task_revise(task=task, by=contractor)
        task.refresh_from_db()
        task = services.task_submit(task=task, by=contractor, **judgement)
    decide(task, reviewer=reviewer)
    Task.objects.filter(pk=task.pk).update(active_seconds=600 * task.pk % 3600 + 60)
    return task


@pytest.fixture
def judged_set(ready_repository, contractor, reviewer):
    strong, middle, weak = (ModelEndpointFactory(name=n) for n in ("strong", "middle", "weak"))
    first = ProjectFactory(name="First", endpoint_a=strong, endpoint_b=middle)
    second = ProjectFactory(name="Second", endpoint_a=middle, endpoint_b=weak)
    plan = [(first, "strong")] * 4 + [(first, "middle")] + [(first, None)]
    plan += [(second, "middle")] * 4 + [(second, "weak")]
    tasks = [
        _judged(
            project=project,
            repository=ready_repository,
            contractor=contractor,
            reviewer=reviewer,
            winner=winner,
            bounce=(i == 0),
        )
        for i, (project, winner) in enumerate(plan)
    ]
    # The times on task were written behind review_decide's back: the aggregates are rebuilt,
    # as `manage.py dashboard_aggregates_rebuild` would after such an edit.
    aggregates.aggregates_rebuild()
    return {"first": first, "second": second, "tasks": tasks}


def test_the_overall_dashboard_orders_models_and_counts_everything(judged_set):
    board = dashboard.dashboard(samples=50)
    assert board.judged_turns == 11
    by_model = {s.model: s for s in board.strengths}
    assert [s.model for s in board.strengths] == ["strong", "middle", "weak"]
    assert (by_model["strong"].wins, by_model["strong"].losses, by_model["strong"].ties) == (
        4,
        1,
        1,
    )
    assert (by_model["middle"].wins, by_model["middle"].losses) == (5, 5)
    assert by_model["weak"].win_rate == pytest.approx(1 / 5)
    for s in board.strengths:
        assert s.low <= s.strength <= s.high
    bias = board.position_bias
    assert bias.a_wins + bias.b_wins == 10 and bias.ties == 1
    # One bounce among 12 decisions; 11 closed tasks took 12 rounds in all.
    assert board.decisions == 12 and board.bounce_rate == pytest.approx(1 / 12)
    assert board.rounds_per_task == pytest.approx(12 / 11)
    seconds = sorted(t.active_seconds for t in Task.objects.all())
    assert board.median_seconds_on_task == seconds[len(seconds) // 2]
    # Every candidate of an accepted task is counted once per model.
    assert sum(total for _, total in board.applies_cleanly.values()) == 22
    assert set(board.score_distributions) == {"strong", "middle", "weak"}
    # "strong" won 4 turns with 5 on every axis, lost one with 2, tied one with 3.
    assert board.score_distributions["strong"]["security"] == [0, 1, 1, 0, 4]
    assert sum(sum(day.values()) for day in board.submissions_per_day.values()) == 12
    assert sum(sum(day.values()) for day in board.reviews_per_day.values()) == 12


def test_a_project_dashboard_reads_only_that_project(judged_set):
    board = dashboard.dashboard(project=judged_set["second"], samples=50)
    assert board.judged_turns == 5
    assert {s.model for s in board.strengths} == {"middle", "weak"}
    assert board.strengths[0].model == "middle"


def test_only_accepted_final_judgements_count(judged_set, ready_repository, contractor, project):
    submitted = generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )
    services.task_submit(
        task=submitted,
        by=contractor,
        preference=3,
        scores=valid_scores(project, a=1, b=5),
        justification="Not accepted yet: must not count.",
    )
    assert dashboard.dashboard(samples=10).judged_turns == 11


def test_the_page_and_the_api_show_the_dashboard_to_admins_only(
    client, judged_set, admin_user, reviewer, contractor
):
    client.force_login(admin_user)
    page = client.get(reverse("reviews:dashboard"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "chart-4.6.1.umd.min.js" in html and 'id="dashboard-data"' in html
    data = json.loads(html.split('id="dashboard-data" type="application/json">')[1].split("<")[0])
    assert [s["model"] for s in data["strengths"]] == ["strong", "middle", "weak"]
    filtered = client.get(reverse("reviews:dashboard"), {"project": judged_set["first"].pk})
    assert 'data-model="weak"' not in filtered.content.decode()
    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.get(reverse("api-dashboard"), {"project": judged_set["second"].pk})
    assert response.status_code == 200 and response.json()["judged_turns"] == 5
    assert api.get(reverse("api-dashboard"), {"project": "x"}).status_code == 400
    for user in (reviewer, contractor):
        client.force_login(user)
        assert client.get(reverse("reviews:dashboard")).status_code == 403
        api.force_authenticate(user)
        assert api.get(reverse("api-dashboard")).status_code == 403
