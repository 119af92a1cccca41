"""Review decisions: one reviewer's accept or bounce of one round of a task."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from marlin.exceptions import ApplicationError, InvalidTransition
from marlin.permissions import is_reviewer
from reviews.models import Review
from tasks.models import Task

FEEDBACK_MAX_CHARS = 20_000


def review_decide(*, task: Task, reviewer: Any, decision: str, feedback: str) -> Review:
    """Accept or bounce the task's current round; exactly one decision per round wins.

    A second reviewer deciding the same round at the same moment gets an ApplicationError
    telling them it was already decided, and nothing of theirs is stored.
    """
    feedback = (feedback or "").strip()
    if not is_reviewer(reviewer):
        raise ApplicationError("Only reviewers can review tasks.")
    if task.contractor_id == reviewer.pk:
        raise ApplicationError("You cannot review your own task.")
    if decision not in Review.Decision.values:
        raise ApplicationError("The decision must be accept or bounce.")
    if decision == Review.Decision.BOUNCE and not feedback:
        raise ApplicationError("Bouncing a task needs feedback for the contractor.")
    if len(feedback) > FEEDBACK_MAX_CHARS:
        raise ApplicationError(f"Feedback is limited to {FEEDBACK_MAX_CHARS} characters.")
    try:
        with transaction.atomic():
            review = Review(
                task=task, round=task.round, reviewer=reviewer, decision=decision, feedback=feedback
            )
            review.full_clean(validate_constraints=False)
            review.save()
            if decision == Review.Decision.ACCEPT:
                task.accept(by=reviewer)
            else:
                task.bounce(by=reviewer, reason=feedback)
    except (IntegrityError, InvalidTransition) as exc:
        earlier = Review.objects.filter(task=task, round=task.round).first()
        if earlier is not None and earlier.reviewer_id == reviewer.pk:
            return earlier  # the same reviewer's double click: their decision stands
        raise ApplicationError("This submission was already decided by another reviewer.") from exc
    return review
