from __future__ import annotations

from typing import Any

from celery import Task as CeleryTask
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from marlin.db_retry import DISCONNECTED, close_broken_connection

# A job that lost its database waits this long before it runs again.
DATABASE_RETRY_SECONDS = 5
# Shown when the job's soft time limit stops a generation.
TOO_SLOW = "The model took too long to answer; you can retry this candidate."


class WorkerLimitsJob(CeleryTask):
    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Send the job without time limits in its message.

        Celery copies a task's limits into every message it sends, where they win over the
        worker's own: the web process's settings, not the worker's, would decide. Left
        out, the worker running the job applies its own (MARLIN_GENERATION_*_TIME_LIMIT_*).
        """
        options["time_limit"] = None
        options["soft_time_limit"] = None
        return super().apply_async(args, kwargs, **options)


class CandidateJob(WorkerLimitsJob):
    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """An unexpected error (a bug) must not leave the candidate RUNNING.

        Only while this job holds the row: a job the reaper replaced leaves its successor be.
        """
        from tasks.generation_services import candidate_fail

        candidate_id = kwargs.get("candidate_id", args[0] if args else None)
        if candidate_id is not None:
            candidate_fail(
                candidate_id=candidate_id,
                reason="Generation stopped because of an internal error; you can retry it.",
                detail=f"{type(exc).__name__}: {exc}",
                job_id=task_id,
            )


# Limits come from the worker's settings (see CandidateJob.apply_async), which insist they
# stay below the Redis visibility timeout (3600 s), or a job still running would be
# delivered a second time.
@shared_task(
    bind=True,
    base=CandidateJob,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.MARLIN_GENERATION_SOFT_TIME_LIMIT_SECONDS,
    time_limit=settings.MARLIN_GENERATION_TIME_LIMIT_SECONDS,
    max_retries=None,  # the service counts attempts on the row, across redeliveries
)
def candidate_generate_run(self: CeleryTask, candidate_id: int) -> None:
    """Generate one candidate (idempotent: the first step claims the row for this job id)."""
    from tasks.generation_services import RetryLater, candidate_fail, candidate_generate

    job_id = self.request.id or ""
    try:
        candidate_generate(candidate_id=candidate_id, job_id=job_id)
    except RetryLater as retry:
        # Same job id on the retried message: it re-claims its own RUNNING row.
        raise self.retry(countdown=retry.countdown) from None
    except DISCONNECTED:
        # The database went away before the model answered (a restart): nothing is lost by
        # running the job again on a new connection, rather than failing the candidate.
        close_broken_connection()
        raise self.retry(countdown=DATABASE_RETRY_SECONDS) from None
    except SoftTimeLimitExceeded as exc:
        detail = f"SoftTimeLimitExceeded after {settings.MARLIN_GENERATION_SOFT_TIME_LIMIT_SECONDS} s: {exc}"
        candidate_fail(candidate_id=candidate_id, reason=TOO_SLOW, detail=detail, job_id=job_id)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def generation_reap_stale_run() -> None:
    """Periodic: re-run candidates whose worker died, fail those stuck past every limit, and
    re-send those left QUEUED."""
    from tasks.generation_services import generation_reap_stale

    generation_reap_stale()


# After a candidate is stored: its diff HTML, built now so even its first view reads the cache.
@shared_task(acks_late=True, soft_time_limit=120, time_limit=150, ignore_result=True)
def candidate_diff_build_run(candidate_id: int) -> None:
    from tasks.generation_services import candidate_diff_build

    candidate_diff_build(candidate_id=candidate_id)


class EvidenceJob(WorkerLimitsJob):
    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """An unexpected error (a bug) must not leave the run RUNNING."""
        from tasks.evidence_services import evidence_fail

        run_id = kwargs.get("run_id", args[0] if args else None)
        if run_id is not None:
            evidence_fail(
                run_id=run_id,
                reason="The checks stopped because of an internal error.",
                detail=f"{type(exc).__name__}: {exc}",
                job_id=task_id,
            )


# Routed to MARLIN_EVIDENCE_QUEUE (CELERY_TASK_ROUTES): a worker of its own runs the checks.
@shared_task(
    bind=True,
    base=EvidenceJob,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.MARLIN_EVIDENCE_SOFT_TIME_LIMIT_SECONDS,
    time_limit=settings.MARLIN_EVIDENCE_TIME_LIMIT_SECONDS,
    max_retries=None,
)
def evidence_collect_run(self: CeleryTask, run_id: int) -> None:
    """Run one evidence run's checks in the sandbox (idempotent: it claims the row first)."""
    from tasks.evidence_services import evidence_collect, evidence_fail

    job_id = self.request.id or ""
    try:
        evidence_collect(run_id=run_id, job_id=job_id)
    except DISCONNECTED:
        close_broken_connection()
        raise self.retry(countdown=DATABASE_RETRY_SECONDS) from None
    except SoftTimeLimitExceeded:
        evidence_fail(
            run_id=run_id,
            reason="The checks took longer than this server allows.",
            detail=f"SoftTimeLimitExceeded after {settings.MARLIN_EVIDENCE_SOFT_TIME_LIMIT_SECONDS} s",
            job_id=job_id,
        )


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def evidence_reap_stale_run() -> None:
    """Periodic: send again evidence runs whose worker died or whose message was lost."""
    from tasks.evidence_services import evidence_reap_stale

    evidence_reap_stale()
