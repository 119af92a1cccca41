from __future__ import annotations

import pytest
from django.urls import reverse

from marlin.exceptions import ApplicationError
from tasks import services
from tasks.models import Judgement, Task, TaskEvent
from tests.tasks.helpers import create_task, generate_all, submit, valid_scores


@pytest.fixture
def judged_task(ready_repository, project, contractor):
    return generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )


def test_it_records_the_judgement_and_submits(judged_task):
    submit(judged_task, preference=-2)
    judged_task.refresh_from_db()
    assert judged_task.status == Task.Status.SUBMITTED
    judgement = Judgement.objects.get(turn__task=judged_task)
    assert judgement.round == 1 and judgement.preference == -2
    assert judgement.scores["A"]["correctness"] == 4


def test_a_double_submit_records_one_judgement(judged_task):
    submit(judged_task)
    submit(judged_task)
    assert Judgement.objects.filter(turn__task=judged_task).count() == 1
    assert TaskEvent.objects.filter(task=judged_task, to_status=Task.Status.SUBMITTED).count() == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"preference": 4}, "seven points"),
        ({"preference": "A"}, "seven points"),
        ({"justification": "too short"}, "at least 20 characters"),
        ({"justification": ""}, "at least 20 characters"),
        ({"scores": {"A": {}}}, "both candidate A and candidate B"),
        ({"scores": "lots"}, "both candidate A and candidate B"),
        ({"scores": "A6"}, "both candidate A and candidate B"),
    ],
)
def test_it_rejects_bad_judgements_and_stores_nothing(judged_task, change, message):
    kwargs = {
        "task": judged_task,
        "by": judged_task.contractor,
        "preference": -2,
        "scores": valid_scores(judged_task.project),
        "justification": "A is clearly the safer change here.",
    }
    kwargs.update(change)
    with pytest.raises(ApplicationError, match=message):
        services.task_submit(**kwargs)
    judged_task.refresh_from_db()
    assert judged_task.status == Task.Status.AWAITING_PREFERENCE
    assert not Judgement.objects.exists()


@pytest.mark.parametrize("value", [0, 6, -1, True, 2.5, "3"])
def test_it_rejects_scores_off_the_scale(judged_task, value):
    scores = valid_scores(judged_task.project)
    scores["B"]["security"] = value
    with pytest.raises(ApplicationError, match="security"):
        services.task_submit(
            task=judged_task,
            by=judged_task.contractor,
            preference=1,
            scores=scores,
            justification="B is clearly the safer change here.",
        )
    assert not Judgement.objects.exists()


def test_it_rejects_unknown_axes(judged_task):
    scores = valid_scores(judged_task.project)
    scores["A"]["vibes"] = 5
    with pytest.raises(ApplicationError, match="needs a score on each of"):
        submit_kwargs = {"preference": 0, "justification": "Both are about the same here."}
        services.task_submit(
            task=judged_task, by=judged_task.contractor, scores=scores, **submit_kwargs
        )


def test_it_refuses_to_submit_before_the_candidates_are_ready(
    ready_repository, project, contractor
):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    with pytest.raises(ApplicationError, match="cannot be submitted while it is generating"):
        submit(task)
    assert not Judgement.objects.exists()


def test_the_form_reports_missing_fields_without_saving(client, judged_task):
    client.force_login(judged_task.contractor)
    response = client.post(
        reverse("tasks:submit", args=[judged_task.pk]), {"preference": "9", "justification": "x"}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Select a valid choice" in page
    assert "Ensure this value has at least 20 characters" in page
    judged_task.refresh_from_db()
    assert judged_task.status == Task.Status.AWAITING_PREFERENCE
    assert not Judgement.objects.exists()


def test_a_double_clicked_submit_over_http_records_one_judgement(client, judged_task):
    client.force_login(judged_task.contractor)
    data = {"preference": "-1", "justification": "A guards the zero case properly."}
    for slot in ("A", "B"):
        for key in judged_task.project.axis_keys:
            data[f"score_{slot}_{key}"] = "3"
    url = reverse("tasks:submit", args=[judged_task.pk])
    assert client.post(url, data).status_code == 302
    assert client.post(url, data).status_code == 302
    assert Judgement.objects.filter(turn__task=judged_task).count() == 1
    assert TaskEvent.objects.filter(task=judged_task, to_status=Task.Status.SUBMITTED).count() == 1
