from __future__ import annotations

from typing import Any

from celery import Task as CeleryTask
from celery import shared_task


class CloneJob(CeleryTask):
    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """An unexpected error must not leave the repository CLONING with nothing running."""
        from repos.services import repository_clone_crashed

        repository_id = kwargs.get("repository_id", args[0] if args else None)
        if repository_id is not None:
            repository_clone_crashed(repository_id=repository_id)


@shared_task(
    base=CloneJob, acks_late=True, reject_on_worker_lost=True, soft_time_limit=900, time_limit=960
)
def repository_clone_run(repository_id: int) -> None:
    """Clone or fetch one repository's shared cache (idempotent: the first step claims the row)."""
    from repos.services import repository_clone

    repository_clone(repository_id=repository_id)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def repository_reap_stale_run() -> None:
    """Periodic: fail clones stuck CLONING and re-send those left QUEUED."""
    from repos.services import repository_reap_stale

    repository_reap_stale()
