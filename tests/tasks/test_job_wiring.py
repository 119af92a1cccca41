"""The Celery wiring of the generation job, on a real worker: a 429 is retried after the
countdown the server asked for, and the soft time limit fails the candidate as too slow."""

from __future__ import annotations

import pytest

from tasks.jobs import TOO_SLOW
from tasks.models import Candidate, Task
from tests.conftest import wait_for
from tests.fakes.model_servers import delay, status
from tests.tasks.helpers import create_task, vendor_project

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RETRY_AFTER_SECONDS = 3
SOFT_LIMIT_SECONDS = 3


def _candidate(task: Task, provider: str) -> Candidate:
    return Candidate.objects.get(turn__task=task, endpoint__provider=provider)


@pytest.fixture
def no_own_backoff(monkeypatch):
    # Read by the worker at start (requested before celery_worker_process): with no backoff
    # of Marlin's own, the countdown is the server's Retry-After alone.
    monkeypatch.setenv("MARLIN_GENERATION_BACKOFF_SECONDS", "0")


@pytest.fixture
def short_time_limits(monkeypatch):
    monkeypatch.setenv("MARLIN_GENERATION_SOFT_TIME_LIMIT_SECONDS", str(SOFT_LIMIT_SECONDS))
    monkeypatch.setenv("MARLIN_GENERATION_TIME_LIMIT_SECONDS", str(SOFT_LIMIT_SECONDS + 5))


def test_a_429_is_retried_after_the_servers_retry_after(
    fake_models, no_own_backoff, celery_worker_process, ready_repository, contractor
):
    alpha, beta = fake_models
    beta.enqueue(status(429, retry_after=RETRY_AFTER_SECONDS))
    task = create_task(
        contractor=contractor, project=vendor_project(alpha, beta), repository=ready_repository
    )
    busy = _candidate(task, "openai")
    # While the retry waits, the row stays RUNNING under its job and says what happens next.
    wait_for(
        lambda: "will try again shortly" in Candidate.objects.get(pk=busy.pk).error,
        timeout=60,
        interval=0.1,
        message="the candidate to show it is waiting to try again",
    )
    busy.refresh_from_db()
    assert busy.status == Candidate.Status.RUNNING
    assert busy.error == "The model is busy. Marlin will try again shortly."
    waiting_job = busy.job_id

    wait_for(
        lambda: Task.objects.get(pk=task.pk).status == Task.Status.AWAITING_PREFERENCE,
        timeout=60,
        message="the retried job to finish the task",
    )
    busy.refresh_from_db()
    assert busy.status == Candidate.Status.SUCCEEDED and busy.error == ""
    # Celery's retry: the same job, claimed a second time, one attempt more.
    assert busy.job_id == waiting_job and busy.attempts == 2
    first, second = beta.requests
    gap = second.received_at - first.received_at
    print(f"429 with Retry-After {RETRY_AFTER_SECONDS} s -> next request after {gap:.2f} s")
    # Honours the countdown (not retried at once), and not some far longer backoff.
    assert RETRY_AFTER_SECONDS <= gap < RETRY_AFTER_SECONDS + 10
    assert len(alpha.requests) == 1


def test_a_model_hanging_past_the_soft_time_limit_fails_as_too_slow(
    fake_models, short_time_limits, celery_worker_process, ready_repository, contractor
):
    alpha, beta = fake_models
    # Both SDKs: each must let the job's limit through, not turn it into a retryable error.
    for server in (alpha, beta):
        server.enqueue(delay(60))
    task = create_task(
        contractor=contractor, project=vendor_project(alpha, beta), repository=ready_repository
    )
    wait_for(
        lambda: Task.objects.get(pk=task.pk).status == Task.Status.GENERATION_FAILED,
        timeout=60,
        message="the soft time limit to fail the task",
    )
    for provider in ("anthropic", "openai"):
        candidate = _candidate(task, provider)
        assert candidate.status == Candidate.Status.FAILED
        assert candidate.error == TOO_SLOW
        assert candidate.attempts == 1
        # Stopped at the limit (the job starts a moment before it claims the row).
        elapsed = (candidate.finished_at - candidate.started_at).total_seconds()
        assert SOFT_LIMIT_SECONDS - 1 <= elapsed < SOFT_LIMIT_SECONDS + 5
    # Not retried: a call the job's own limit cut off is not a transient model error.
    assert len(alpha.requests) == len(beta.requests) == 1
