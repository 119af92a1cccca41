from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from tasks import generation
from tasks.models import Candidate, Task
from tests.tasks.helpers import create_task


def test_it_fails_candidates_running_past_the_limit_and_settles_the_task(
    ready_repository, project, contractor, settings
):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    stuck, done = Candidate.objects.filter(turn__task=task).order_by("slot")
    generation.candidate_generate(candidate_id=done.pk)
    stuck.claim(job_id="lost-job")
    later = timezone.now() + timedelta(seconds=settings.MARLIN_GENERATION_STALE_SECONDS + 1)
    assert generation.generation_reap_stale(now=later) == {"failed": 1, "requeued": 0}
    stuck.refresh_from_db()
    task.refresh_from_db()
    assert stuck.status == Candidate.Status.FAILED and "took too long" in stuck.error
    assert task.status == Task.Status.GENERATION_FAILED


def test_it_leaves_recent_running_candidates_alone(ready_repository, project, contractor):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    candidate = Candidate.objects.filter(turn__task=task).first()
    candidate.claim(job_id="live-job")
    assert generation.generation_reap_stale()["failed"] == 0
    candidate.refresh_from_db()
    assert candidate.status == Candidate.Status.RUNNING


def test_it_resends_candidates_left_queued_once_per_interval(
    ready_repository, project, contractor, settings, django_capture_on_commit_callbacks
):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    later = timezone.now() + timedelta(seconds=settings.MARLIN_QUEUED_STALE_SECONDS + 1)
    assert generation.generation_reap_stale(now=later)["requeued"] == 2
    # The re-sent rows count as fresh: the next pass a minute on does not send them again.
    assert generation.generation_reap_stale(now=later + timedelta(seconds=60))["requeued"] == 0
    assert Candidate.objects.filter(turn__task=task, status="QUEUED").count() == 2
