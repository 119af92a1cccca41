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


# A 200 MB catalogue imports in a few minutes; the limits only catch a stuck job, and stay
# below the broker's visibility timeout (3600 s) so a live job is never delivered twice.
@shared_task(
    bind=True, acks_late=True, reject_on_worker_lost=True, soft_time_limit=1800, time_limit=1860
)
def catalogue_import_run(self, import_id: int) -> None:
    """Import one uploaded catalogue file (a redelivery goes on from the last batch)."""
    from repos.catalogue_imports import catalogue_import_execute

    catalogue_import_execute(import_id=import_id, job_id=self.request.id or "")


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def catalogue_import_reap_stale_run() -> None:
    """Periodic: resume imports whose worker died and re-send those left QUEUED."""
    from repos.catalogue_imports import catalogue_import_reap_stale

    catalogue_import_reap_stale()
