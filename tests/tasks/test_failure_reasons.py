"""A failed candidate says what happened and that the contractor can retry it; only a
candidate whose job will really try again says "Marlin will try again shortly"."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.urls import reverse

from tasks import generation_services
from tasks.models import Candidate, Task
from tests.fakes.model_servers import status
from tests.tasks.helpers import create_task, vendor_project

PROMISE = "will try again shortly"


@pytest.fixture
def failing_model(fake_models, ready_repository, contractor, settings):
    """A task whose B model answers 503 every time, with two attempts per candidate."""
    settings.MARLIN_GENERATION_MAX_ATTEMPTS = 2
    alpha, beta = fake_models
    beta.set_default(status(503))
    task = create_task(
        contractor=contractor, project=vendor_project(alpha, beta), repository=ready_repository
    )
    other = Candidate.objects.get(turn__task=task, endpoint__provider="anthropic")
    generation_services.candidate_generate(candidate_id=other.pk, job_id="job-a")
    return task, Candidate.objects.get(turn__task=task, endpoint__provider="openai")


def test_a_transient_error_with_attempts_left_promises_a_retry(failing_model):
    task, candidate = failing_model
    with pytest.raises(generation_services.RetryLater):
        generation_services.candidate_generate(candidate_id=candidate.pk, job_id="job-b")
    candidate.refresh_from_db()
    assert candidate.status == Candidate.Status.RUNNING and candidate.attempts == 1
    assert candidate.error == "The model service had an error. Marlin will try again shortly."


def test_the_last_attempt_says_what_happened_and_that_the_contractor_can_retry(failing_model):
    task, candidate = failing_model
    with pytest.raises(generation_services.RetryLater):
        generation_services.candidate_generate(candidate_id=candidate.pk, job_id="job-b")
    # The job's retry: the same job id claims its row again, for the last attempt.
    generation_services.candidate_generate(candidate_id=candidate.pk, job_id="job-b")
    candidate.refresh_from_db()
    task.refresh_from_db()
    assert candidate.status == Candidate.Status.FAILED and candidate.attempts == 2
    assert PROMISE not in candidate.error
    assert candidate.error == (
        "The model service had an error. Marlin tried 2 times and stopped; "
        "you can retry this candidate."
    )
    assert task.status == Task.Status.GENERATION_FAILED


def test_the_workspace_does_not_promise_a_retry_for_a_failed_candidate(
    failing_model, client, contractor
):
    task, candidate = failing_model
    with pytest.raises(generation_services.RetryLater):
        generation_services.candidate_generate(candidate_id=candidate.pk, job_id="job-b")
    generation_services.candidate_generate(candidate_id=candidate.pk, job_id="job-b")
    client.force_login(contractor)
    page = client.get(reverse("tasks:detail", args=[task.pk])).content.decode()
    assert "Marlin tried 2 times and stopped; you can retry this candidate." in page
    assert PROMISE not in page
    assert f"Retry candidate {candidate.slot}" in page


def test_reasons_stored_before_the_change_are_reworded(ready_repository, project, contractor):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    old, running = Candidate.objects.filter(turn__task=task).order_by("slot")
    old.fail(reason="The model is busy; Marlin will try again shortly.")
    running.claim(job_id="job-1")
    # A candidate still waiting for its retry keeps the promise, which is still true.
    Candidate.objects.filter(pk=running.pk).update(error="The model is busy; " + PROMISE + ".")
    migration = importlib.import_module("tasks.migrations.0009_candidate_lease")
    migration.reword_final_failures(apps, None)
    old.refresh_from_db()
    running.refresh_from_db()
    assert old.error == ("The model is busy. Marlin stopped trying; you can retry this candidate.")
    assert PROMISE in running.error
