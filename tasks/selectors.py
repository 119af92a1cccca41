"""Permission-scoped reads: an outsider gets 404, never another person's task."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from tasks.models import Candidate, Project, Task, Turn


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
        "events",
    )


def task_list_for_contractor(*, user: Any) -> QuerySet[Task]:
    return Task.objects.filter(contractor=user).select_related("project", "repository")


def task_get_for_contractor(*, user: Any, pk: int) -> Task:
    return get_object_or_404(_task_qs(), pk=pk, contractor=user)


def task_get_for_reviewer(*, user: Any, pk: int) -> Task:
    """Tasks that reached review, except the reviewer's own."""
    reviewed_states = [Task.Status.SUBMITTED, Task.Status.ACCEPTED, Task.Status.BOUNCED]
    return get_object_or_404(_task_qs().exclude(contractor=user), pk=pk, status__in=reviewed_states)


def candidate_get_for_contractor(*, user: Any, pk: int) -> Candidate:
    return get_object_or_404(
        Candidate.objects.select_related("turn__task"), pk=pk, turn__task__contractor=user
    )


def project_list_active() -> QuerySet[Project]:
    return Project.objects.filter(is_active=True)


def candidate_get_for_viewer(*, user: Any, pk: int) -> Candidate:
    """A candidate its task's contractor may see, or a reviewer of that task (not their own)."""
    candidate = get_object_or_404(Candidate.objects.select_related("turn__task"), pk=pk)
    task = candidate.turn.task
    if task.contractor_id == user.pk and user.has_perm("tasks.work_on_tasks"):
        return candidate
    reviewed = (Task.Status.SUBMITTED, Task.Status.ACCEPTED, Task.Status.BOUNCED)
    if (
        user.has_perm("reviews.review_tasks")
        and task.contractor_id != user.pk
        and task.status in reviewed
    ):
        return candidate
    raise Http404
