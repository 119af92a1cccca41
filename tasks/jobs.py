from __future__ import annotations

from typing import Any

from celery import Task as CeleryTask
from celery import shared_task


class CandidateJob(CeleryTask):
    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """An unexpected error (a bug, a time limit) must not leave the candidate RUNNING."""
        from tasks.services import candidate_fail_unexpectedly

        candidate_id = kwargs.get("candidate_id", args[0] if args else None)
        if candidate_id is not None:
            candidate_fail_unexpectedly(candidate_id=candidate_id, error=exc)


@shared_task(
    bind=True,
    base=CandidateJob,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=600,
    time_limit=660,
)
def candidate_generate_run(self: CeleryTask, candidate_id: int) -> None:
    """Generate one candidate (idempotent: the first step claims the row for this job id)."""
    from tasks.services import candidate_generate

    candidate_generate(candidate_id=candidate_id, job_id=self.request.id or "")


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def generation_reap_stale_run() -> None:
    """Periodic: fail candidates stuck RUNNING and re-send those left QUEUED."""
    from tasks.services import generation_reap_stale

    generation_reap_stale()
