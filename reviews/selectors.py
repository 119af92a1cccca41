from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from tasks.models import Task


def review_queue_for(*, user: Any) -> QuerySet[Task]:
    """Submitted tasks waiting for a decision, oldest first, never the reviewer's own."""
    return (
        Task.objects.filter(status=Task.Status.SUBMITTED)
        .exclude(contractor=user)
        .select_related("project", "repository")
        .order_by("submitted_at")
    )
