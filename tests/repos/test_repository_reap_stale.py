from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from repos import services
from repos.jobs import repository_clone_run
from repos.models import Repository


def test_it_fails_a_clone_stuck_past_the_time_limit(served_repository, settings):
    served_repository.queue_clone()
    served_repository.start_cloning()
    later = timezone.now() + timedelta(seconds=settings.MARLIN_CLONE_TIMEOUT_SECONDS + 121)
    assert services.repository_reap_stale(now=later) == {"failed": 1, "requeued": 0}
    served_repository.refresh_from_db()
    assert served_repository.clone_status == Repository.CloneStatus.FAILED
    assert "interrupted" in served_repository.clone_error


def test_a_crashed_clone_job_offers_a_retry(served_repository):
    served_repository.queue_clone()
    served_repository.start_cloning()
    repository_clone_run.on_failure(OSError("disk"), "id", (served_repository.pk,), {}, None)
    served_repository.refresh_from_db()
    assert served_repository.clone_status == Repository.CloneStatus.FAILED
    # From FAILED the page offers "Retry clone": queue_clone is allowed again.
    served_repository.queue_clone()
    assert served_repository.clone_status == Repository.CloneStatus.QUEUED
