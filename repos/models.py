from __future__ import annotations

from django.db import models

from marlin.models import BaseModel
from marlin.state_machine import move


class Repository(BaseModel):
    """A GitHub repository of the catalogue, and the state of its shared clone."""

    class CloneStatus(models.TextChoices):
        NOT_CLONED = "NOT_CLONED", "Not cloned"
        QUEUED = "QUEUED", "Queued"
        CLONING = "CLONING", "Cloning"
        READY = "READY", "Ready"
        FAILED = "FAILED", "Failed"

    full_name = models.CharField(max_length=140, unique=True)
    clone_url = models.CharField(max_length=300)
    html_url = models.CharField(max_length=300, blank=True)
    default_branch = models.CharField(max_length=255, default="main")
    language = models.CharField(max_length=64, blank=True, db_index=True)
    stars = models.PositiveIntegerField(default=0, db_index=True)
    description = models.TextField(blank=True)
    license = models.CharField(max_length=64, blank=True)
    topics = models.JSONField(default=list, blank=True)
    is_enabled = models.BooleanField(default=True, db_index=True)
    clone_status = models.CharField(
        max_length=16, choices=CloneStatus.choices, default=CloneStatus.NOT_CLONED, db_index=True
    )
    clone_error = models.TextField(blank=True)
    cloned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-stars", "full_name"]
        verbose_name_plural = "repositories"

    def __str__(self) -> str:
        return self.full_name

    @property
    def is_ready(self) -> bool:
        return self.clone_status == self.CloneStatus.READY

    def queue_clone(self) -> None:
        """Ask for a (re)clone; a READY repository is re-fetched to pick up new commits."""
        move(
            self,
            to=self.CloneStatus.QUEUED,
            field="clone_status",
            transitions=CLONE_TRANSITIONS,
            clone_error="",
        )

    def start_cloning(self) -> None:
        """Claim the queued clone for one worker; a second claim raises InvalidTransition."""
        move(self, to=self.CloneStatus.CLONING, field="clone_status", transitions=CLONE_TRANSITIONS)

    def finish_cloning(self, *, cloned_at) -> None:
        move(
            self,
            to=self.CloneStatus.READY,
            field="clone_status",
            transitions=CLONE_TRANSITIONS,
            cloned_at=cloned_at,
            clone_error="",
        )

    def fail_cloning(self, *, reason: str) -> None:
        move(
            self,
            to=self.CloneStatus.FAILED,
            field="clone_status",
            transitions=CLONE_TRANSITIONS,
            clone_error=reason,
        )


_C = Repository.CloneStatus
CLONE_TRANSITIONS: dict[str, set[str]] = {
    _C.NOT_CLONED: {_C.QUEUED},
    _C.QUEUED: {_C.CLONING},
    _C.CLONING: {_C.READY, _C.FAILED},
    _C.READY: {_C.QUEUED},
    _C.FAILED: {_C.QUEUED},
}
