from __future__ import annotations

from typing import Any

from celery import Task as CeleryTask
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded


class CandidateJob(CeleryTask):
    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """An unexpected error (a bug, the hard limit) must not leave the candidate RUNNING."""
        from tasks.generation import candidate_fail

        candidate_id = kwargs.get("candidate_id", args[0] if args else None)
        if candidate_id is not None:
            candidate_fail(
                candidate_id=candidate_id,
                reason="Generation stopped because of an internal error; retry it.",
            )


# Limits stay well below the Redis visibility timeout (3600 s), or a job still running
# would be delivered a second time.
@shared_task(
    bind=True,
    base=CandidateJob,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=600,
    time_limit=660,
    max_retries=None,  # the service counts attempts on the row, across redeliveries
)
def candidate_generate_run(self: CeleryTask, candidate_id: int) -> None:
    """Generate one candidate (idempotent: the first step claims the row for this job id)."""
    from tasks.generation import RetryLater, candidate_fail, candidate_generate

    try:
        candidate_generate(candidate_id=candidate_id, job_id=self.request.id or "")
    except RetryLater as retry:
        # Same job id on the retried message: it re-claims its own RUNNING row.
        raise self.retry(countdown=retry.countdown) from None
    except SoftTimeLimitExceeded:
        candidate_fail(
            candidate_id=candidate_id, reason="The model took too long to answer; retry it."
        )


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def generation_reap_stale_run() -> None:
    """Periodic: fail candidates stuck RUNNING and re-send those left QUEUED."""
    from tasks.generation import generation_reap_stale

    generation_reap_stale()
