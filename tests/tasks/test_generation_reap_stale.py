from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from marlin.exceptions import InvalidTransition
from tasks import generation_services
from tasks.models import Candidate, Task
from tests.tasks.helpers import create_task


def test_it_fails_candidates_running_past_the_limit_and_settles_the_task(
    ready_repository, project, contractor, settings
):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    stuck, done = Candidate.objects.filter(turn__task=task).order_by("slot")
    generation_services.candidate_generate(candidate_id=done.pk)
    stuck.claim(job_id="lost-job")
    # Claimed before leases existed: only the hard-limit rule applies to it.
    Candidate.objects.filter(pk=stuck.pk).update(lease_expires_at=None)
    later = timezone.now() + timedelta(seconds=settings.MARLIN_GENERATION_STALE_SECONDS + 1)
    assert generation_services.generation_reap_stale(now=later) == {
        "failed": 1,
        "requeued": 0,
        "restarted": 0,
    }
    stuck.refresh_from_db()
    task.refresh_from_db()
    assert stuck.status == Candidate.Status.FAILED and "took too long" in stuck.error
    assert task.status == Task.Status.GENERATION_FAILED


def test_it_leaves_recent_running_candidates_alone(ready_repository, project, contractor):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    candidate = Candidate.objects.filter(turn__task=task).first()
    candidate.claim(job_id="live-job")
    assert generation_services.generation_reap_stale()["failed"] == 0
    candidate.refresh_from_db()
    assert candidate.status == Candidate.Status.RUNNING


def test_it_resends_candidates_left_queued_once_per_interval(
    ready_repository, project, contractor, settings, django_capture_on_commit_callbacks
):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    later = timezone.now() + timedelta(seconds=settings.MARLIN_QUEUED_STALE_SECONDS + 1)
    assert generation_services.generation_reap_stale(now=later)["requeued"] == 2
    # The re-sent rows count as fresh: the next pass a minute on does not send them again.
    assert (
        generation_services.generation_reap_stale(now=later + timedelta(seconds=60))["requeued"]
        == 0
    )
    assert Candidate.objects.filter(turn__task=task, status="QUEUED").count() == 2


def _past_lease(settings, seconds: float = 1) -> datetime:
    return timezone.now() + timedelta(
        seconds=settings.MARLIN_GENERATION_HEARTBEAT_STALE_SECONDS + seconds
    )


def test_it_sends_a_candidate_whose_lease_ran_out_to_a_new_job(
    ready_repository, project, contractor, settings, django_capture_on_commit_callbacks
):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    candidate = Candidate.objects.filter(turn__task=task).first()
    candidate.claim(job_id="dead-job")  # then its worker died: no heartbeat renews the lease
    with django_capture_on_commit_callbacks() as sent:
        outcome = generation_services.generation_reap_stale(now=_past_lease(settings))
    assert outcome == {"failed": 0, "requeued": 0, "restarted": 1}
    assert len(sent) == 1  # one new message, not also a second one for "left QUEUED"
    candidate.refresh_from_db()
    assert candidate.status == Candidate.Status.QUEUED
    assert candidate.job_id == "" and candidate.attempts == 1  # the dead attempt counts
    assert candidate.error == generation_services.RESTARTED_NOTE

    assert generation_services.candidate_generate(candidate_id=candidate.pk, job_id="new-job")
    candidate.refresh_from_db()
    assert candidate.status == Candidate.Status.SUCCEEDED and candidate.attempts == 2
    written = Candidate.objects.filter(pk=candidate.pk).values().get()
    # The dead job's message, redelivered by the broker, is refused at the claim.
    assert (
        generation_services.candidate_generate(candidate_id=candidate.pk, job_id="dead-job") is None
    )
    assert Candidate.objects.filter(pk=candidate.pk).values().get() == written


def test_a_job_presumed_dead_cannot_write_over_its_successor(
    ready_repository, project, contractor, settings
):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    candidate = Candidate.objects.filter(turn__task=task).first()
    zombie = Candidate.objects.get(pk=candidate.pk)
    zombie.claim(job_id="slow-job")
    generation_services.generation_reap_stale(now=_past_lease(settings))
    candidate.refresh_from_db()
    candidate.claim(job_id="new-job")
    before = Candidate.objects.filter(pk=candidate.pk).values().get()
    # The slow job was alive after all and comes back with an answer or an error: the row
    # is RUNNING, as it expects, but held by another job.
    with pytest.raises(InvalidTransition, match="from RUNNING to SUCCEEDED"):
        zombie.succeed(
            raw_answer="late", explanation="late", diff="", is_truncated=False,
            applies_cleanly=False, apply_error="", job_id="slow-job",
        )  # fmt: skip
    with pytest.raises(InvalidTransition, match="from RUNNING to FAILED"):
        zombie.fail(reason="late error", job_id="slow-job")
    generation_services.candidate_fail(
        candidate_id=candidate.pk, reason="late crash", job_id="slow-job"
    )
    assert Candidate.objects.filter(pk=candidate.pk).values().get() == before
    assert not zombie.renew_lease(job_id="slow-job", seconds=60)


def test_it_fails_a_dead_candidate_with_no_attempts_left_without_promising_a_retry(
    ready_repository, project, contractor, settings
):
    settings.MARLIN_GENERATION_MAX_ATTEMPTS = 2
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    candidate, other = Candidate.objects.filter(turn__task=task).order_by("slot")
    generation_services.candidate_generate(candidate_id=other.pk)
    candidate.claim(job_id="dead-1")
    generation_services.generation_reap_stale(now=_past_lease(settings))
    candidate.refresh_from_db()
    candidate.claim(job_id="dead-2")  # its second worker died too
    outcome = generation_services.generation_reap_stale(now=_past_lease(settings))
    assert outcome == {"failed": 1, "requeued": 0, "restarted": 0}
    candidate.refresh_from_db()
    task.refresh_from_db()
    assert candidate.status == Candidate.Status.FAILED and candidate.attempts == 2
    assert "try again" not in candidate.error and "you can retry" in candidate.error
    assert task.status == Task.Status.GENERATION_FAILED


def test_a_renewed_lease_keeps_the_candidate_running(
    ready_repository, project, contractor, settings
):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    candidate = Candidate.objects.filter(turn__task=task).first()
    candidate.claim(job_id="live-job")
    stale = settings.MARLIN_GENERATION_HEARTBEAT_STALE_SECONDS
    assert candidate.renew_lease(job_id="live-job", seconds=stale + 30)
    assert generation_services.generation_reap_stale(now=_past_lease(settings))["restarted"] == 0
    candidate.refresh_from_db()
    assert candidate.status == Candidate.Status.RUNNING and candidate.job_id == "live-job"
