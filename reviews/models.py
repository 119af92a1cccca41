from __future__ import annotations

from django.conf import settings
from django.db import models

from marlin.models import BaseModel


class Review(BaseModel):
    """A reviewer's decision on one round of a task; rounds are never overwritten."""

    class Decision(models.TextChoices):
        ACCEPT = "ACCEPT", "Accept"
        BOUNCE = "BOUNCE", "Bounce"

    task = models.ForeignKey("tasks.Task", on_delete=models.CASCADE, related_name="reviews")
    round = models.PositiveIntegerField()
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews"
    )
    decision = models.CharField(max_length=8, choices=Decision.choices)
    feedback = models.TextField(blank=True)

    class Meta:
        ordering = ["task", "round"]
        constraints = [
            models.UniqueConstraint(fields=["task", "round"], name="review_unique_round"),
        ]
        permissions = [
            ("review_tasks", "Can review submitted tasks (reviewer)"),
            ("export_dataset", "Can export preference datasets (admin)"),
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} of task {self.task_id} round {self.round}"
