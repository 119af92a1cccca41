from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import F, FilteredRelation, Q, QuerySet
from django.utils import timezone

from marlin.permissions import can_oversee
from reviews import quality_flags
from reviews.models import Review, ReviewClaim, ReviewNote
from tasks.models import Task, TaskEvent

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def review_queue(
    *,
    user: User,
    project_id: int | None = None,
    repository_id: int | None = None,
    kind: str = "",
    flag: str = "",
    sort: str = "",
) -> QuerySet[Task]:
    """Submitted tasks waiting for a decision, oldest first, never the reviewer's own.

    Each task carries `claim_reviewer_id` and `claim_expires_at` (None when unclaimed), and
    its current round's effort flags (quality_flags.tasks_with_flags). `flag` keeps tasks
    flagged with that kind; `sort="flags"` puts the most flagged first (oldest first among equals).
    """
    tasks = (
        Task.objects.filter(status=Task.Status.SUBMITTED)
        .exclude(contractor=user)
        .annotate(
            open_claim=FilteredRelation(
                "claims",
                condition=Q(claims__ended_at__isnull=True, claims__expires_at__gt=timezone.now()),
            )
        )
    )
    if project_id:
        tasks = tasks.filter(project_id=project_id)
    if repository_id:
        tasks = tasks.filter(repository_id=repository_id)
    if kind:
        tasks = tasks.filter(kind=kind)
    tasks = quality_flags.tasks_with_flags(tasks, flag=flag)
    order = ["submitted_at", "pk"]
    if sort == quality_flags.SORT_BY_FLAGS:
        order.insert(0, "-flag_count")
    return (
        tasks.select_related("project", "repository")
        .annotate(
            claim_reviewer_id=F("open_claim__reviewer_id"),
            claim_expires_at=F("open_claim__expires_at"),
        )
        .order_by(*order)
    )


def review_claim_open(*, task: Task) -> ReviewClaim | None:
    """The claim holding the task now, if any (an expired one no longer holds it)."""
    return (
        ReviewClaim.objects.select_related("reviewer")
        .filter(task=task, ended_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )


def review_latest(*, task: Task) -> Review | None:
    """The decision on the task's last decided round, with its notes."""
    return (
        Review.objects.filter(task=task)
        .select_related("reviewer")
        .prefetch_related("notes")
        .order_by("-round")
        .first()
    )


def review_latest_bounce(*, task: Task) -> Review | None:
    """The feedback a contractor works from: the last decision, if it was a bounce."""
    review = review_latest(task=task)
    return review if review is not None and review.decision == Review.Decision.BOUNCE else None


def review_notes_by_anchor(*, review: Review | None) -> dict[str, list[ReviewNote]]:
    """A review's notes keyed by where they apply (ReviewNote.anchor)."""
    found: dict[str, list[ReviewNote]] = {}
    if review is not None:
        for note in review.notes.all():
            found.setdefault(note.anchor, []).append(note)
    return found


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    actor: str
    kind: str
    from_status: str
    to_status: str
    reason: str


def task_timeline(*, task: Task, viewer: User) -> list[TimelineEntry]:
    """The task's audit trail as the viewer may see it.

    Contractors see who reviewed only as "a reviewer", reviewers see the contractor only as
    "the contractor"; admins see every name.
    Uses the events prefetched with their actors.
    """
    oversees = can_oversee(viewer)
    entries = []
    for event in task.events.all():
        if event.actor is None:
            actor = "Marlin"
        elif oversees:
            actor = event.actor.get_username()
        elif event.actor_id == viewer.pk:
            actor = "you"
        elif event.actor_id == task.contractor_id:
            actor = "the contractor"
        else:
            actor = "a reviewer" if viewer.pk == task.contractor_id else event.actor.get_username()
        entries.append(
            TimelineEntry(
                at=event.created_at,
                actor=actor,
                kind=event.get_kind_display() if event.kind != TaskEvent.Kind.STATUS else "",
                from_status=event.get_from_status_display() if event.from_status else "",
                to_status=event.get_to_status_display(),
                reason=event.reason,
            )
        )
    return entries
