"""Permission-scoped reads: an outsider gets 404, never another person's task."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from tasks.models import REVIEWED_STATES, Candidate, Project, Task, TaskEvent, Turn


def _task_qs() -> QuerySet[Task]:
    return Task.objects.select_related(
        "project__endpoint_a", "project__endpoint_b", "repository", "contractor"
    ).prefetch_related(
        Prefetch(
            "turns",
            queryset=Turn.objects.prefetch_related(
                Prefetch("candidates", queryset=Candidate.objects.select_related("endpoint")),
                "judgements",
                "drafts",
            ),
        ),
        Prefetch("events", queryset=TaskEvent.objects.select_related("actor")),
        "submissions",
    )


def task_list_for_contractor(*, user: Any) -> QuerySet[Task]:
    return Task.objects.filter(contractor=user).select_related("project", "repository")


def task_get_for_contractor(*, user: Any, pk: int) -> Task:
    return get_object_or_404(_task_qs(), pk=pk, contractor=user)


def task_get_for_reviewer(*, user: Any, pk: int) -> Task:
    """A task that reached review. A reviewer's own task is refused outright (403)."""
    task = get_object_or_404(_task_qs(), pk=pk, status__in=REVIEWED_STATES)
    if task.contractor_id == user.pk:
        raise PermissionDenied("You cannot review your own task.")
    return task


def candidate_get_for_contractor(*, user: Any, pk: int) -> Candidate:
    return get_object_or_404(
        Candidate.objects.select_related("turn__task"), pk=pk, turn__task__contractor=user
    )


def project_list_active() -> QuerySet[Project]:
    return Project.objects.filter(is_active=True)


def candidate_get_for_viewer(*, user: Any, pk: int) -> Candidate:
    """A candidate its task's contractor may see, or a reviewer or admin once the task reached
    review (never their own task)."""
    candidate = get_object_or_404(
        Candidate.objects.select_related(
            "endpoint", "turn__task__project__endpoint_a", "turn__task__project__endpoint_b"
        ),
        pk=pk,
    )
    task = candidate.turn.task
    if task.contractor_id == user.pk and user.has_perm("tasks.work_on_tasks"):
        return candidate
    if (
        (user.has_perm("reviews.review_tasks") or user.has_perm("reviews.oversee_reviews"))
        and task.contractor_id != user.pk
        and task.status in REVIEWED_STATES
    ):
        return candidate
    raise Http404
