"""Review claims, the writes (the read is selectors.review_claim_open): a reviewer holds a submitted task while reviewing it, one at a time.

The partial unique index `claim_one_open_per_task` decides races; these functions only
turn its answer into messages a person can act on.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.utils import timezone

from marlin.exceptions import ConflictError, InvalidTransition, PermissionDeniedError
from marlin.permissions import is_reviewer
from reviews.models import ReviewClaim
from tasks.models import Task, TaskEvent

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def _end(claim: ReviewClaim, *, ending: str) -> bool:
    """End an open claim once; False when it had already ended (another process did it)."""
    try:
        claim.end(ending=ending)
    except InvalidTransition:
        return False
    return True


def _log(task: Task, *, kind: str, by: User, reason: str) -> None:
    TaskEvent.objects.create(
        task=task,
        from_status=task.status,
        to_status=task.status,
        actor=by,
        kind=kind,
        reason=reason,
    )


def review_claim(*, task: Task, reviewer: User) -> ReviewClaim:
    """Claim a submitted task for `reviewer` for the project's claim time.

    Claiming again what one already holds returns the same claim (a double click). An
    expired claim of someone else is ended first, so the task is free again.
    """
    if not is_reviewer(reviewer):
        raise PermissionDeniedError("Only reviewers can claim tasks.")
    if task.contractor_id == reviewer.pk:
        raise PermissionDeniedError("You cannot review your own task.")
    now = timezone.now()
    try:
        with transaction.atomic():
            task = Task.objects.select_related("project").get(pk=task.pk)
            if task.status != Task.Status.SUBMITTED:
                # 409 like a decision on a decided task: the state moved on, not bad input.
                raise ConflictError(
                    f"Task #{task.pk} is {task.get_status_display().lower()}; only submitted "
                    "tasks can be claimed."
                )
            current = ReviewClaim.objects.filter(task=task, ended_at__isnull=True).first()
            if current is not None:
                if current.expires_at > now:
                    if current.reviewer_id == reviewer.pk:
                        return current
                    raise ConflictError(_taken_message(task))
                if _end(current, ending=ReviewClaim.Ending.EXPIRED):
                    _log(task, kind=TaskEvent.Kind.EXPIRE, by=None, reason="claim expired")
            claim = ReviewClaim.objects.create(
                task=task,
                round=task.round,
                reviewer=reviewer,
                claimed_at=now,
                expires_at=now + timedelta(minutes=task.project.claim_minutes),
            )
            _log(task, kind=TaskEvent.Kind.CLAIM, by=reviewer, reason="")
    except IntegrityError as exc:
        # Another reviewer's claim committed between our read and our insert.
        raise ConflictError(_taken_message(task)) from exc
    return claim


def _taken_message(task: Task) -> str:
    return f"Task #{task.pk} is already claimed by another reviewer."


def review_release(*, task: Task, reviewer: User) -> None:
    """Give a claim back so the task returns to the queue; releasing twice is harmless."""
    claim = ReviewClaim.objects.filter(task=task, ended_at__isnull=True).first()
    if claim is None:
        return
    if claim.reviewer_id != reviewer.pk:
        raise ConflictError("This task is claimed by another reviewer; only they can release it.")
    with transaction.atomic():
        if _end(claim, ending=ReviewClaim.Ending.RELEASED):
            _log(task, kind=TaskEvent.Kind.RELEASE, by=reviewer, reason="released by the reviewer")


def claim_for_decision(*, task: Task, reviewer: User) -> ReviewClaim:
    """The reviewer's open claim on the task, locked, or an error saying to claim first.

    Called inside the decision's transaction; the claim ends as decided with it.
    """
    claim = (
        ReviewClaim.objects.select_for_update()
        .filter(task=task, ended_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )
    if claim is None:
        # The holder may have decided while we waited on their claim's lock: say so, rather
        # than ask for a claim on a round that is closed.
        decided = ReviewClaim.objects.filter(
            task=task, round=task.round, ending=ReviewClaim.Ending.DECIDED
        )
        if decided.exists():
            raise ConflictError("This submission was already decided by another reviewer.")
        raise ConflictError("Claim this task before deciding it (your claim may have expired).")
    if claim.reviewer_id != reviewer.pk:
        raise ConflictError(_taken_message(task))
    return claim


def claim_end_decided(claim: ReviewClaim) -> None:
    _end(claim, ending=ReviewClaim.Ending.DECIDED)


def claims_release_expired() -> int:
    """End every lapsed claim (the periodic job); returns how many were ended."""
    ended = 0
    lapsed = ReviewClaim.objects.filter(ended_at__isnull=True, expires_at__lte=timezone.now())
    for claim in lapsed.select_related("task"):
        with transaction.atomic():
            if _end(claim, ending=ReviewClaim.Ending.EXPIRED):
                _log(claim.task, kind=TaskEvent.Kind.EXPIRE, by=None, reason="claim expired")
                ended += 1
    return ended
