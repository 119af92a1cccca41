"""Two candidates that made the same change are shown as such and never become a preference.

Both fake model servers answer with the same change (whitespace apart): the turn is marked,
the workspace says so, only "About the same" can be given, and no pairwise export holds the
pair. Regenerating one candidate makes the turn comparable again.
"""

from __future__ import annotations

import orjson
import pytest
from django.urls import reverse

from marlin.exceptions import ApplicationError
from reviews import exports
from reviews.export_filters import ExportFilters
from tasks import generation_services, services
from tasks.models import Candidate, Task, TaskEvent
from tests.fakes.model_servers import FakeAnthropicServer, FakeOpenAIServer, ok
from tests.tasks.helpers import create_task, decide, generate_all, valid_scores, vendor_project

OPS_TAIL = " def div(a, b):\n     return a / b\n"


def _answer(explanation: str, added: str) -> str:
    return (
        f"{explanation}\n\n```diff\n--- a/calc/ops.py\n+++ b/calc/ops.py\n"
        f"@@ -5,2 +5,3 @@\n{OPS_TAIL}+{added}\n```\n"
    )


@pytest.fixture
def servers(monkeypatch):
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "sk-ant-test")
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-openai-test")
    # The same line, once with other spacing: the same change by any reasonable reading.
    with (
        FakeAnthropicServer(default=ok(_answer("I guard it.", "# guard: b != 0"))) as alpha,
        FakeOpenAIServer(default=ok(_answer("Guarded.", "#  guard:  b != 0   "))) as beta,
    ):
        yield alpha, beta


@pytest.fixture
def identical_task(ready_repository, servers, contractor) -> Task:
    project = vendor_project(*servers)
    task = generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )
    assert task.status == Task.Status.AWAITING_PREFERENCE
    return task


def _judge(task: Task, preference: int, a: int = 3, b: int = 3) -> Task:
    return services.task_submit(
        task=task, by=task.contractor, preference=preference,
        scores=valid_scores(task.project, a, b), justification="Both add the same guard line.",
    )  # fmt: skip


def test_the_turn_is_marked_and_the_workspace_says_so(client, identical_task, contractor):
    turn = identical_task.turns.get()
    assert turn.has_identical_candidates is True
    client.force_login(contractor)
    page = client.get(reverse("tasks:detail", args=[identical_task.pk])).content.decode()
    assert "Both candidates made the same change" in page
    assert "Regenerate candidate A" in page and "Regenerate candidate B" in page
    # Only "About the same" is offered as the preference.
    assert page.count('name="preference"') == 1
    assert 'name="preference" value="0"' in page


@pytest.mark.parametrize("preference", [-3, -1, 1, 2])
def test_only_about_the_same_is_accepted(identical_task, preference):
    with pytest.raises(ApplicationError, match="made the same change"):
        _judge(identical_task, preference, *((4, 2) if preference < 0 else (2, 4)))
    identical_task.refresh_from_db()
    assert identical_task.status == Task.Status.AWAITING_PREFERENCE


def test_no_pairwise_format_exports_the_pair(identical_task, reviewer):
    # Scored apart on security, so the criterion format would otherwise make a pair of it.
    scores = valid_scores(identical_task.project, 3, 3)
    scores["A"]["security"] = 4
    services.task_submit(
        task=identical_task, by=identical_task.contractor, preference=0, scores=scores,
        justification="Both add the same guard line.",
    )  # fmt: skip
    decide(identical_task, reviewer=reviewer)
    for fmt in ("trl", "openai", "criterion:security"):
        blocks = list(exports.export_blocks(fmt=fmt, filters=ExportFilters()))
        assert sum(b.records for b in blocks) == 0, fmt
        assert b"".join(b.data for b in blocks) == b"", fmt
    (criterion,) = exports.export_blocks(fmt="criterion:security", filters=ExportFilters())
    assert criterion.left_out == {exports.IDENTICAL: 1}
    (native,) = exports.export_blocks(fmt="native", filters=ExportFilters())
    record = orjson.loads(native.data)
    assert record["identical_candidates"] is True and record["preference"] == 0


def test_regenerating_one_candidate_makes_the_turn_comparable(identical_task, servers):
    alpha, beta = servers
    beta.set_default(ok(_answer("A different guard.", "assert b != 0")))
    openai_candidate = Candidate.objects.get(turn__task=identical_task, endpoint__provider="openai")
    other = Candidate.objects.get(turn__task=identical_task, endpoint__provider="anthropic")
    kept_answer = other.raw_answer
    generation_services.candidate_regenerate(
        candidate=openai_candidate, by=identical_task.contractor
    )
    identical_task.refresh_from_db()
    assert identical_task.status == Task.Status.GENERATING
    assert TaskEvent.objects.filter(
        task=identical_task, reason__contains="regenerated: both candidates made the same change"
    ).exists()
    task = generate_all(identical_task)
    assert task.status == Task.Status.AWAITING_PREFERENCE
    turn = task.turns.get()
    assert turn.has_identical_candidates is False
    other.refresh_from_db()
    assert other.raw_answer == kept_answer  # the other slot is untouched
    assert len(alpha.requests) == 1 and len(beta.requests) == 2
    _judge(task, 2, 2, 4)  # a real preference is possible again


def test_candidates_that_differ_cannot_be_regenerated(ready_repository, project, contractor):
    task = generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )
    assert task.turns.get().has_identical_candidates is False
    with pytest.raises(ApplicationError, match="same change can be regenerated"):
        generation_services.candidate_regenerate(
            candidate=Candidate.objects.filter(turn__task=task).first(), by=contractor
        )


def test_only_the_contractor_may_regenerate(identical_task, other_contractor):
    with pytest.raises(ApplicationError, match="Only the task's contractor"):
        generation_services.candidate_regenerate(
            candidate=Candidate.objects.filter(turn__task=identical_task).first(),
            by=other_contractor,
        )
    assert identical_task.turns.get().has_identical_candidates is True


def test_the_api_regenerates_one_of_two_identical_candidates(identical_task, contractor):
    from tests.api_clients import api_client_for

    client = api_client_for(contractor)
    detail = client.get(reverse("api-task", args=[identical_task.pk])).json()
    assert detail["turns"][0]["has_identical_candidates"] is True
    candidate = detail["turns"][0]["candidates"][0]
    response = client.post(reverse("api-candidate-regenerate", args=[candidate["id"]]))
    assert response.status_code == 202, response.json()
    assert Candidate.objects.get(pk=candidate["id"]).status == Candidate.Status.QUEUED
    # Now they no longer are two identical answers: a second regenerate is refused.
    response = client.post(reverse("api-candidate-regenerate", args=[candidate["id"]]))
    assert response.status_code == 400
