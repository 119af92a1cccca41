"""Follow-up turns continue the conversation from the preferred candidate, on both models."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from marlin.exceptions import ApplicationError
from tasks import generation_services, services
from tasks.models import Candidate, Task, Turn
from tests.factories import pool_endpoints
from tests.fakes.model_servers import fake_token_count
from tests.tasks.helpers import create_task, valid_scores, vendor_project


@pytest.fixture
def fake_project(db, fake_models):
    return vendor_project(*fake_models, max_turns=2)


def _generate(task: Task) -> None:
    for candidate in Candidate.objects.filter(turn__task=task, status=Candidate.Status.QUEUED):
        generation_services.candidate_generate(candidate_id=candidate.pk)


def _slot_of(task: Task, turn_number: int, provider: str) -> str:
    return Candidate.objects.get(
        turn__task=task, turn__number=turn_number, endpoint__provider=provider
    ).slot


def test_the_second_turn_continues_from_the_preferred_answer_on_both_models(
    ready_repository, fake_project, fake_models, contractor
):
    alpha, beta = fake_models
    task = create_task(contractor=contractor, project=fake_project, repository=ready_repository)
    _generate(task)
    task.refresh_from_db()
    assert task.status == Task.Status.AWAITING_PREFERENCE
    first_turn = Candidate.objects.filter(turn__task=task, turn__number=1)
    assert all(c.applies_cleanly for c in first_turn), [c.apply_error for c in first_turn]
    # Each candidate keeps the token usage its server reported (the fakes count ~4 chars/token).
    for candidate in first_turn:
        server = alpha if candidate.endpoint.provider == "anthropic" else beta
        sent = server.requests[0].body["messages"]
        assert candidate.input_tokens == fake_token_count(sent)
        assert candidate.output_tokens and candidate.output_tokens >= 1

    # Prefer beta's answer, whichever slot it landed in.
    preference = -3 if _slot_of(task, 1, "openai") == "A" else 3
    scores = valid_scores(fake_project, *((4, 2) if preference < 0 else (2, 4)))
    services.task_follow_up(
        task=task, by=contractor, preference=preference, scores=scores,
        justification="Beta's marker is where it belongs.", prompt="Now also guard add().",
    )  # fmt: skip
    task.refresh_from_db()
    assert task.status == Task.Status.GENERATING
    _generate(task)
    task.refresh_from_db()
    assert task.status == Task.Status.AWAITING_PREFERENCE
    assert Turn.objects.filter(task=task).count() == 2

    for server in (alpha, beta):
        sent = json.dumps(server.last_request.body)
        assert "Now also guard add()." in sent
        assert "beta-turn1" in sent  # the preferred answer is the conversation so far
        assert "alpha-turn1" not in sent  # the other one is not
        roles = [m["role"] for m in server.last_request.body["messages"] if m["role"] != "system"]
        assert roles == ["user", "assistant", "user"]


def test_the_project_caps_the_turns(ready_repository, fake_project, contractor):
    task = create_task(contractor=contractor, project=fake_project, repository=ready_repository)
    _generate(task)
    judged = {
        "preference": 1, "scores": valid_scores(fake_project, 3, 4),
        "justification": "B is clearly the better change.",
    }  # fmt: skip
    services.task_follow_up(task=task, by=contractor, prompt="More, please.", **judged)
    _generate(task)
    with pytest.raises(ApplicationError, match="at most 2 turns"):
        services.task_follow_up(task=task, by=contractor, prompt="Even more.", **judged)
    assert Turn.objects.filter(task=task).count() == 2


def test_a_project_minimum_of_turns_holds_at_submit(ready_repository, fake_project, contractor):
    fake_project.min_turns = 2
    fake_project.save()
    task = create_task(contractor=contractor, project=fake_project, repository=ready_repository)
    _generate(task)
    with pytest.raises(ApplicationError, match="at least 2 turns"):
        services.task_submit(
            task=task, by=contractor, preference=0, scores=valid_scores(fake_project, 3, 3),
            justification="About the same, both fine.",
        )  # fmt: skip
    task.refresh_from_db()
    assert task.status == Task.Status.AWAITING_PREFERENCE


MIN_TURNS_NOTICE = "This project needs at least 2 turns before you submit"


def test_the_workspace_asks_for_more_turns_as_the_submit_counts_them(
    client, ready_repository, fake_project, contractor
):
    fake_project.min_turns = 2
    fake_project.max_turns = 3
    fake_project.save()
    task = create_task(contractor=contractor, project=fake_project, repository=ready_repository)
    _generate(task)
    client.force_login(contractor)
    page = client.get(reverse("tasks:detail", args=[task.pk])).content.decode()
    assert MIN_TURNS_NOTICE in page and task.needs_more_turns(turns=1)
    judged = {"preference": -2, "scores": valid_scores(fake_project),
              "justification": "A guards the zero divisor; B does not."}  # fmt: skip
    services.task_follow_up(task=task, by=contractor, prompt="Also the modulo.", **judged)
    _generate(task)
    page = client.get(reverse("tasks:detail", args=[task.pk])).content.decode()
    assert MIN_TURNS_NOTICE not in page and not task.needs_more_turns(turns=2)


def test_a_transient_error_is_retried_then_shown_as_failed(
    ready_repository, fake_project, fake_models, contractor, settings
):
    from tests.fakes.model_servers import status

    settings.MARLIN_GENERATION_MAX_ATTEMPTS = 2
    alpha, _ = fake_models
    alpha.enqueue(status(500), status(429, retry_after=7))
    task = create_task(contractor=contractor, project=fake_project, repository=ready_repository)
    candidate = Candidate.objects.get(turn__task=task, endpoint__provider="anthropic")
    with pytest.raises(generation_services.RetryLater) as first:
        generation_services.candidate_generate(candidate_id=candidate.pk, job_id="j1")
    candidate.refresh_from_db()
    assert candidate.status == Candidate.Status.RUNNING and "try again" in candidate.error
    assert first.value.countdown > 0
    # The retried message carries the same job id, re-claims the row and gives up at the cap.
    generation_services.candidate_generate(candidate_id=candidate.pk, job_id="j1")
    candidate.refresh_from_db()
    assert candidate.status == Candidate.Status.FAILED and candidate.attempts == 2
    assert "busy" in candidate.error
    assert len(alpha.requests) == 2


def test_an_endpoint_at_its_concurrency_cap_makes_candidates_wait_queued(
    ready_repository, fake_project, contractor
):
    endpoint = pool_endpoints(fake_project)[0]
    endpoint.max_concurrency = 1
    endpoint.save()
    first = create_task(contractor=contractor, project=fake_project, repository=ready_repository)
    second = create_task(contractor=contractor, project=fake_project, repository=ready_repository)
    busy = Candidate.objects.get(turn__task=first, endpoint=endpoint)
    busy.claim(job_id="holding")  # one generation is running on the endpoint
    waiting = Candidate.objects.get(turn__task=second, endpoint=endpoint)
    with pytest.raises(generation_services.RetryLater):
        generation_services.candidate_generate(candidate_id=waiting.pk, job_id="w1")
    touched = waiting.updated_at
    waiting.refresh_from_db()
    assert waiting.status == Candidate.Status.QUEUED and waiting.attempts == 0
    assert waiting.updated_at > touched  # a live wait: the reaper will not re-send it
    # Once the running one is done, the waiting one goes through.
    busy.fail(reason="done")
    generation_services.candidate_generate(candidate_id=waiting.pk, job_id="w1")
    waiting.refresh_from_db()
    assert waiting.status == Candidate.Status.SUCCEEDED and waiting.attempts == 1


def test_a_paused_endpoint_takes_no_new_work(ready_repository, fake_project, contractor):
    task = create_task(contractor=contractor, project=fake_project, repository=ready_repository)
    paused = pool_endpoints(fake_project)[1]
    paused.is_enabled = False
    paused.save()
    queued = Candidate.objects.get(turn__task=task, endpoint=pool_endpoints(fake_project)[1])
    generation_services.candidate_generate(candidate_id=queued.pk, job_id="j")
    queued.refresh_from_db()
    assert queued.status == Candidate.Status.FAILED
    assert queued.error == "The model is not available right now."
    with pytest.raises(ApplicationError, match="models are paused"):
        create_task(contractor=contractor, project=fake_project, repository=ready_repository)
    assert Task.objects.count() == 1


def test_a_job_whose_worker_keeps_dying_gives_up_at_the_attempt_cap(
    ready_repository, fake_project, fake_models, contractor, settings
):
    settings.MARLIN_GENERATION_MAX_ATTEMPTS = 2
    alpha, _ = fake_models
    task = create_task(contractor=contractor, project=fake_project, repository=ready_repository)
    candidate = Candidate.objects.get(turn__task=task, endpoint=pool_endpoints(fake_project)[0])
    candidate.claim(job_id="j")  # attempt 1: the worker died
    candidate.claim(job_id="j")  # attempt 2 (redelivered): died again
    generation_services.candidate_generate(candidate_id=candidate.pk, job_id="j")  # third delivery
    candidate.refresh_from_db()
    assert candidate.status == Candidate.Status.FAILED and "kept stopping" in candidate.error
    assert not alpha.requests  # the model was not called a third time


def test_an_answer_without_a_change_fails_at_once(
    ready_repository, fake_project, fake_models, contractor
):
    from tests.fakes.model_servers import ok

    alpha, _ = fake_models
    alpha.enqueue(ok("I would rather not change anything."))
    task = create_task(contractor=contractor, project=fake_project, repository=ready_repository)
    candidate = Candidate.objects.get(turn__task=task, endpoint=pool_endpoints(fake_project)[0])
    generation_services.candidate_generate(candidate_id=candidate.pk, job_id="j")
    candidate.refresh_from_db()
    assert candidate.status == Candidate.Status.FAILED
    assert candidate.error == "The answer contains no code change."
    assert len(alpha.requests) == 1


def test_backoff_grows_and_honours_retry_after(settings):
    settings.MARLIN_GENERATION_BACKOFF_SECONDS = 2
    settings.MARLIN_GENERATION_BACKOFF_MAX_SECONDS = 60
    first = [generation_services.backoff_seconds(1, None) for _ in range(20)]
    third = [generation_services.backoff_seconds(3, None) for _ in range(20)]
    assert all(1 <= d <= 2 for d in first) and all(4 <= d <= 8 for d in third)
    assert len(set(third)) > 1  # jittered
    assert generation_services.backoff_seconds(1, 30) >= 30  # the server said wait 30 s
    assert generation_services.backoff_seconds(1, 600) == 60  # but never past the ceiling


def test_an_oversized_answer_is_cut_and_marked(
    ready_repository, fake_project, fake_models, contractor, settings
):
    from tests.fakes.model_servers import ok

    settings.MARLIN_ANSWER_MAX_CHARS = 2000
    alpha, _ = fake_models
    diff = "```diff\n--- a/calc/ops.py\n+++ b/calc/ops.py\n@@ -5,2 +5,3 @@\n def div(a, b):\n     return a / b\n+# x\n```\n"
    alpha.enqueue(ok(diff + "Explanation. " * 500))
    task = create_task(contractor=contractor, project=fake_project, repository=ready_repository)
    candidate = Candidate.objects.get(turn__task=task, endpoint=pool_endpoints(fake_project)[0])
    generation_services.candidate_generate(candidate_id=candidate.pk, job_id="j")
    candidate.refresh_from_db()
    assert candidate.status == Candidate.Status.SUCCEEDED
    assert candidate.is_truncated is True
    assert candidate.explanation.endswith("was cut here.]")
    assert len(candidate.explanation) < 2200
