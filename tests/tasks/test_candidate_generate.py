from __future__ import annotations

import subprocess

from repos.services import repository_cache_path
from tasks import generation_services
from tasks.models import Candidate, Task
from tests.tasks.helpers import create_task, generate_all


def test_it_generates_both_candidates_and_moves_the_task_on(ready_repository, project, contractor):
    task = generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )
    assert task.status == Task.Status.AWAITING_PREFERENCE
    for candidate in Candidate.objects.filter(turn__task=task):
        assert candidate.status == Candidate.Status.SUCCEEDED
        assert "Demo output" in candidate.explanation
        assert candidate.started_at <= candidate.finished_at


def test_the_demo_diff_applies_to_the_pinned_commit(
    ready_repository, project, contractor, tmp_path
):
    task = generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )
    checkout = tmp_path / "checkout"
    git = ["git", "-c", "protocol.file.allow=always"]
    subprocess.run(
        [*git, "clone", "-q", str(repository_cache_path(ready_repository)), str(checkout)],
        check=True,
    )
    subprocess.run([*git, "-C", str(checkout), "checkout", "-q", task.commit_sha], check=True)
    for candidate in Candidate.objects.filter(turn__task=task):
        patch = tmp_path / f"{candidate.slot}.diff"
        patch.write_text(candidate.diff)
        result = subprocess.run(
            ["git", "-C", str(checkout), "apply", "--check", str(patch)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr


def test_a_redelivered_job_neither_duplicates_nor_overwrites(ready_repository, project, contractor):
    task = generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )
    candidate = Candidate.objects.filter(turn__task=task).first()
    before = Candidate.objects.filter(pk=candidate.pk).values().get()
    assert generation_services.candidate_generate(candidate_id=candidate.pk) is None
    assert Candidate.objects.filter(pk=candidate.pk).values().get() == before
    assert Candidate.objects.filter(turn__task=task).count() == 2


def test_a_failed_candidate_says_why_and_can_be_retried_alone(
    ready_repository, project, contractor
):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    failing, other = Candidate.objects.filter(turn__task=task).order_by("slot")
    # An endpoint whose provider is not available fails with a readable reason.
    failing.endpoint.provider = "unavailable"
    failing.endpoint.save()
    generation_services.candidate_generate(candidate_id=other.pk)
    generation_services.candidate_generate(candidate_id=failing.pk)
    failing.refresh_from_db()
    task.refresh_from_db()
    assert failing.status == Candidate.Status.FAILED
    assert failing.error == "The model is not available right now."
    assert task.status == Task.Status.GENERATION_FAILED

    failing.endpoint.provider = "demo"
    failing.endpoint.save()
    other_before = Candidate.objects.filter(pk=other.pk).values().get()
    generation_services.candidate_retry(candidate=failing, by=contractor)
    task.refresh_from_db()
    assert task.status == Task.Status.GENERATING
    generation_services.candidate_generate(candidate_id=failing.pk)
    task.refresh_from_db()
    failing.refresh_from_db()
    assert failing.status == Candidate.Status.SUCCEEDED and failing.attempts == 1
    assert task.status == Task.Status.AWAITING_PREFERENCE
    # The candidate that had succeeded was not touched by the retry.
    assert Candidate.objects.filter(pk=other.pk).values().get() == other_before


def test_the_task_waits_while_one_candidate_is_still_running(ready_repository, project, contractor):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    first = Candidate.objects.filter(turn__task=task).first()
    generation_services.candidate_generate(candidate_id=first.pk)
    task.refresh_from_db()
    assert task.status == Task.Status.GENERATING


def test_a_crashed_job_leaves_a_failed_candidate_not_a_running_one(
    ready_repository, project, contractor
):
    from tasks.jobs import candidate_generate_run

    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    candidate = Candidate.objects.filter(turn__task=task).first()
    candidate.claim(job_id="job-1")  # the job got as far as claiming, then crashed
    candidate_generate_run.on_failure(RuntimeError("boom"), "job-1", (candidate.pk,), {}, None)
    candidate.refresh_from_db()
    assert candidate.status == Candidate.Status.FAILED
    assert "internal error" in candidate.error and "boom" not in candidate.error


def test_the_same_job_redelivered_after_a_worker_died_finishes_the_candidate_once(
    ready_repository, project, contractor
):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    candidate, other = Candidate.objects.filter(turn__task=task).order_by("slot")
    candidate.claim(job_id="job-7")  # the worker died here, leaving the row RUNNING
    assert (
        generation_services.candidate_generate(candidate_id=candidate.pk, job_id="job-7")
        is not None
    )
    candidate.refresh_from_db()
    assert candidate.status == Candidate.Status.SUCCEEDED
    assert candidate.attempts == 2
    # A different job (a duplicate enqueue) may not take a RUNNING or finished row.
    assert generation_services.candidate_generate(candidate_id=candidate.pk, job_id="job-8") is None
    other.claim(job_id="job-9")
    assert generation_services.candidate_generate(candidate_id=other.pk, job_id="job-10") is None
    other.refresh_from_db()
    assert other.status == Candidate.Status.RUNNING and other.job_id == "job-9"
