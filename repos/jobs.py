from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=900, time_limit=960)
def repository_clone_run(repository_id: int) -> None:
    """Clone or fetch one repository's shared cache (idempotent: the first step claims the row)."""
    from repos.services import repository_clone

    repository_clone(repository_id=repository_id)
