"""Review decisions: one reviewer's accept or bounce of one round of a task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction

from marlin.exceptions import (
    ApplicationError,
    ConflictError,
    InvalidTransition,
    PermissionDeniedError,
)
from marlin.permissions import is_reviewer
from marlin.text import normalise_newlines
from reviews import (
    aggregates,
    claim_services,
    comment_services,
    earning_services,
    notification_services,
    quality_audits,
    quality_overlap,
)
from reviews.models import Review, ReviewNote
from tasks.models import Task, Turn

if TYPE_CHECKING:
    from django.contrib.auth.models import User

FEEDBACK_MAX_CHARS = 20_000
NOTES_MAX = 200


@dataclass(frozen=True)
class NoteInput:
    """Feedback on one turn (field empty), or on one field of the turn's judgement."""

    turn_id: int
    text: str
    slot: str = ""
    field: str = ""


def _clean_notes(task: Task, notes: list[NoteInput]) -> list[ReviewNote]:
    """Check each note names a turn of this task and a field its judgement has."""
    if len(notes) > NOTES_MAX:
        raise ApplicationError(f"At most {NOTES_MAX} notes per decision.")
    turns = {t.pk: t for t in Turn.objects.filter(task=task)}
    axes = set(task.project.axis_keys)
    clean = []
    for note in notes:
        text = normalise_newlines(note.text or "").strip()
        if not text:
            continue
        if len(text) > FEEDBACK_MAX_CHARS:
            raise ApplicationError(f"A note is limited to {FEEDBACK_MAX_CHARS} characters.")
        if note.turn_id not in turns:
            raise ApplicationError("A note is attached to a turn that is not part of this task.")
        if note.field in axes:
            if note.slot not in ("A", "B"):
                raise ApplicationError("A note on a score must name candidate A or B.")
        elif note.field in ("", ReviewNote.PREFERENCE, ReviewNote.JUSTIFICATION):
            if note.slot:
                raise ApplicationError("Only notes on a rubric score name a candidate.")
        else:
            raise ApplicationError(f"Unknown field for a note: {note.field!r}.")
        clean.append(ReviewNote(turn_id=note.turn_id, slot=note.slot, field=note.field, text=text))
    return clean


def review_decide(
    *,
    task: Task,
    reviewer: User,
    decision: str,
    feedback: str,
    notes: list[NoteInput] | None = None,
) -> Review:
    """Accept or bounce the task's current round; exactly one decision per round wins.

    The reviewer must hold the task's claim. A bounce needs general feedback; notes may
    add feedback on a turn or one field of it, and the reviewer's draft line comments become
    part of the decision. A bounce of the project's last allowed round
    rejects the task for good. An accept fixes the contractor's earning. The contractor is
    notified either way.
    """
    feedback = normalise_newlines(feedback or "").strip()
    if not is_reviewer(reviewer):
        raise PermissionDeniedError("Only reviewers can review tasks.")
    if task.contractor_id == reviewer.pk:
        raise PermissionDeniedError("You cannot review your own task.")
    if decision not in Review.Decision.values:
        raise ApplicationError("The decision must be accept or bounce.")
    if decision == Review.Decision.BOUNCE and not feedback:
        raise ApplicationError("Bouncing a task needs feedback for the contractor.")
    if len(feedback) > FEEDBACK_MAX_CHARS:
        raise ApplicationError(f"Feedback is limited to {FEEDBACK_MAX_CHARS} characters.")
    round_seen = task.round
    task = Task.objects.select_related("project").get(pk=task.pk)
    if task.status != Task.Status.SUBMITTED:
        earlier = _own_decision(task, round_seen, reviewer, decision)
        if earlier is not None:
            return earlier
        raise ConflictError(
            f"Task #{task.pk} is {task.get_status_display().lower()}; there is no submission "
            "waiting for a decision."
        )
    clean_notes = _clean_notes(task, notes or [])
    try:
        with transaction.atomic():
            claim = claim_services.claim_for_decision(task=task, reviewer=reviewer)
            rejects = decision == Review.Decision.BOUNCE and task.is_last_round
            review = Review(
                task=task,
                round=task.round,
                reviewer=reviewer,
                decision=decision,
                feedback=feedback,
                rejects_task=rejects,
                claimed_at=claim.claimed_at,
            )
            review.full_clean(validate_constraints=False)
            review.save()
            for note in clean_notes:
                note.review = review
            ReviewNote.objects.bulk_create(clean_notes)
            comment_services.line_comments_attach(review=review)
            if decision == Review.Decision.ACCEPT:
                task.accept(by=reviewer)
                earning_services.earning_record(task=task)
                quality_overlap.judging_tasks_for_accepted(task=task)
                quality_audits.audit_maybe_open(review=review)
            elif rejects:
                task.reject(by=reviewer, reason=feedback)
            else:
                task.bounce(by=reviewer, reason=feedback)
            # After the status change: the aggregates count what the task now is.
            aggregates.aggregates_add_decision(task=task, review=review)
            claim_services.claim_end_decided(claim)
            notification_services.notify_decision(task=task, review=review)
    except (IntegrityError, InvalidTransition, ConflictError) as exc:
        # Lost a race: to another reviewer, or to this reviewer's own first click.
        earlier = _own_decision(task, round_seen, reviewer, decision)
        if earlier is not None:
            return earlier
        if isinstance(exc, ConflictError):
            raise
        raise ConflictError("This submission was already decided by another reviewer.") from exc
    return review


def _own_decision(task: Task, round_: int, reviewer: User, decision: str) -> Review | None:
    """The reviewer's own identical decision on the round: a double click, answered the same."""
    return Review.objects.filter(
        task_id=task.pk, round=round_, reviewer=reviewer, decision=decision
    ).first()
