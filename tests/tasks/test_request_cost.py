"""What a submit, an autosave and a heartbeat cost the database: a small number of queries,
the same however many turns the task has, and never a candidate's diff or raw answer
(issue 19: the task selector's prefetch of every diff made a submit 30 queries).

The budgets are the counts measured when the requests were made lean, with no slack: a
query added on these paths (a prefetch put back, a per-turn read) fails here and must be
argued for by raising the number.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tasks import services
from tasks.models import Candidate, Submission, Task
from tests.api_clients import api_client_for
from tests.tasks.helpers import create_task, generate_all, valid_scores

JUSTIFICATION = "A guards the zero divisor; B crashes on it."
# Columns no write of a judgement reads: megabytes each on a large change.
BIG_COLUMNS = (
    '"tasks_candidate"."diff"',
    '"tasks_candidate"."raw_answer"',
    '"tasks_task"."acceptance_tests"',
)

# Measured budgets (see the module docstring). A page request adds its session, its user and
# the user's permissions (3 queries, marlin.auth_backends) to the service's own.
API_SUBMIT_QUERIES = 15
PAGE_SUBMIT_QUERIES = 15
PAGE_DRAFT_QUERIES = 10
PAGE_HEARTBEAT_QUERIES = 11
SERVICE_SUBMIT_QUERIES = 10
SERVICE_DRAFT_QUERIES = 5


def _with_turns(task: Task, count: int) -> Task:
    """The task with `count` turns, every turn but the last judged (follow-ups)."""
    for _ in range(count - 1):
        task = Task.objects.get(pk=task.pk)
        services.task_follow_up(
            task=task,
            by=task.contractor,
            preference=-2,
            scores=valid_scores(task.project),
            justification=JUSTIFICATION,
            prompt="Now also guard the modulo.",
        )
        generate_all(task)
    return Task.objects.get(pk=task.pk)


@pytest.fixture
def make_task(ready_repository, project, contractor):
    project.max_turns = 5
    project.save()

    def make(turns: int = 1) -> Task:
        task = generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
        task = _with_turns(task, turns)
        # A large change: a read of the diffs would show in the time, here in the SQL.
        Candidate.objects.filter(turn__task=task).update(
            diff="+x = 1\n" * 20_000, raw_answer="text " * 20_000
        )
        return task

    return make


def _page_form(project) -> dict:
    """valid_scores' judgement as the page's form posts it."""
    scores = {
        f"score_{slot}_{axis}": str(value)
        for slot, values in valid_scores(project).items()
        for axis, value in values.items()
    }
    return {"preference": "-2", "justification": JUSTIFICATION, "action": "submit", **scores}


def _api_body(project) -> dict:
    return {"preference": -2, "scores": valid_scores(project), "justification": JUSTIFICATION}


def _queries(run) -> tuple[object, list[str]]:
    with CaptureQueriesContext(connection) as ctx:
        result = run()
    return result, [q["sql"] for q in ctx.captured_queries]


def _assert_lean(sqls: list[str], budget: int) -> None:
    big = [sql[:160] for sql in sqls if any(column in sql for column in BIG_COLUMNS)]
    assert not big, f"a write read a diff, an answer or the acceptance tests: {big}"
    assert len(sqls) <= budget, f"{len(sqls)} queries (budget {budget}):\n" + "\n".join(
        sql[:160] for sql in sqls
    )


@pytest.mark.parametrize("turns", [1, 3])
def test_an_api_submit_costs_a_constant_small_number_of_queries(make_task, turns):
    task = make_task(turns)
    client = api_client_for(task.contractor)
    url = reverse("api-task-submit", args=[task.pk])
    body = _api_body(task.project)
    response, sqls = _queries(lambda: client.post(url, body, format="json"))
    assert response.status_code == 200, response.content
    assert Submission.objects.filter(task=task).count() == 1
    _assert_lean(sqls, API_SUBMIT_QUERIES)


@pytest.mark.parametrize("turns", [1, 3])
def test_the_submit_service_reads_only_what_it_needs(make_task, turns):
    task = make_task(turns)
    scores = valid_scores(task.project)
    outcome, sqls = _queries(
        lambda: services.task_submit_once(
            task=task,
            by=task.contractor,
            preference=-2,
            scores=scores,
            justification=JUSTIFICATION,
        )
    )
    assert outcome.task.status == Task.Status.SUBMITTED
    _assert_lean(sqls, SERVICE_SUBMIT_QUERIES)


@pytest.mark.parametrize("turns", [1, 3])
def test_the_draft_service_reads_only_what_it_needs(make_task, turns):
    task = make_task(turns)
    draft, sqls = _queries(
        lambda: services.judgement_draft_save(
            task=task, by=task.contractor, data={"justification": "first thoughts"}
        )
    )
    assert draft.data == {"justification": "first thoughts"}
    _assert_lean(sqls, SERVICE_DRAFT_QUERIES)


@pytest.mark.parametrize("turns", [1, 3])
def test_a_page_submit_autosave_and_heartbeat_are_lean(client, make_task, turns):
    task = make_task(turns)
    client.force_login(task.contractor)
    beat, beat_sqls = _queries(
        lambda: client.post(reverse("tasks:heartbeat", args=[task.pk]), {"seconds": "5"})
    )
    saved, draft_sqls = _queries(
        lambda: client.post(reverse("tasks:draft", args=[task.pk]), {"justification": "so far"})
    )
    form = _page_form(task.project)
    sent, submit_sqls = _queries(lambda: client.post(reverse("tasks:submit", args=[task.pk]), form))
    assert (beat.status_code, saved.status_code, sent.status_code) == (204, 204, 302)
    assert Task.objects.get(pk=task.pk).status == Task.Status.SUBMITTED
    _assert_lean(beat_sqls, PAGE_HEARTBEAT_QUERIES)
    _assert_lean(draft_sqls, PAGE_DRAFT_QUERIES)
    _assert_lean(submit_sqls, PAGE_SUBMIT_QUERIES)
