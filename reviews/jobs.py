from __future__ import annotations

from celery import shared_task

from reviews.claim_services import claims_release_expired
from reviews.quality_overlap import judging_tasks_release_stale


@shared_task(name="reviews.jobs.review_claims_release_expired_run", ignore_result=True)
def review_claims_release_expired_run() -> int:
    """Periodic (celery beat): abandoned claims lapse and their tasks return to the queue."""
    return claims_release_expired()


@shared_task(name="reviews.jobs.judging_tasks_release_stale_run", ignore_result=True)
def judging_tasks_release_stale_run() -> int:
    """Periodic (celery beat): pairs taken for judging and abandoned go back to the others."""
    return judging_tasks_release_stale()


# An export of 100k turns takes well under a minute; the limits only catch a stuck job and
# stay below the Redis visibility timeout (3600 s).
@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=3000, time_limit=3300)
def export_job_run(job_id: int) -> None:
    """Write one export job's file (safe to run again: it rewrites the same file)."""
    from reviews.export_job_services import export_job_execute

    export_job_execute(job_id)
