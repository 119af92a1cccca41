from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=600, time_limit=660)
def candidate_generate_run(candidate_id: int) -> None:
    """Generate one candidate (idempotent: the first step claims the row)."""
    from tasks.services import candidate_generate

    candidate_generate(candidate_id=candidate_id)
