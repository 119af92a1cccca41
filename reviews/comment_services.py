"""Line comments: notes on lines of a candidate's diff, by its contractor or its reviewer.

A contractor comments while the task awaits their judgement, on the turns judged this round
(the latest turn; every turn while revising). A reviewer comments while holding the claim on
the submitted task; their comments stay drafts until their decision attaches them to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from marlin.exceptions import ApplicationError, ConflictError, PermissionDeniedError
from marlin.permissions import is_contractor, is_reviewer
from marlin.text import normalise_newlines
from reviews.models import LineComment, Review, ReviewClaim
from tasks.diffview import DiffFile, candidate_diff_view
from tasks.models import Candidate, Task

if TYPE_CHECKING:
    from django.contrib.auth.models import User

TEXT_MAX_CHARS = 5_000
PATH_MAX_CHARS = 1_000
# Per person and candidate: a bound on what one page has to lay out, far above real use.
COMMENTS_MAX_PER_CANDIDATE = 300


def comment_path(file: DiffFile) -> str:
    """The path a comment names a diff file by: after the change, or before it if removed."""
    return file.old_path if file.status == "removed" else file.new_path


def contractor_may_comment_on(*, task: Task, candidate: Candidate, latest_turn: int) -> bool:
    """Whether the task's contractor may comment on `candidate` now (judging it this round);
    `latest_turn` is the number of the task's latest turn."""
    if task.status != Task.Status.AWAITING_PREFERENCE:
        return False
    if candidate.status != Candidate.Status.SUCCEEDED:
        return False
    # A revision round judges every turn again; otherwise only the latest turn is judged.
    return task.round > 1 or candidate.turn.number == latest_turn


def _check_text(text: Any) -> str:
    text = normalise_newlines(str(text or "")).strip()
    if not text:
        raise ApplicationError("A comment needs some text.")
    if len(text) > TEXT_MAX_CHARS:
        raise ApplicationError(f"A comment is limited to {TEXT_MAX_CHARS} characters.")
    return text


def _check_place(
    *, candidate: Candidate, path: Any, side: Any, line: Any, end_line: Any
) -> tuple[str, str, int, int | None]:
    """The comment's place, checked against the candidate's diff as people see it."""
    if side not in LineComment.Side.values:
        raise ApplicationError('The side must be "old" (before the change) or "new" (after it).')
    if not isinstance(path, str) or not path or len(path) > PATH_MAX_CHARS:
        raise ApplicationError(f"The path must be 1 to {PATH_MAX_CHARS} characters.")
    if isinstance(line, bool) or not isinstance(line, int) or line < 1:
        raise ApplicationError("The line must be a positive number.")
    if end_line is not None:
        if isinstance(end_line, bool) or not isinstance(end_line, int) or end_line < line:
            raise ApplicationError("The range must end on or after the line it starts on.")
        if end_line == line:
            end_line = None
    if candidate.status != Candidate.Status.SUCCEEDED:
        raise ApplicationError("This candidate has no diff to comment on.")
    view = candidate_diff_view(candidate)
    file = next((f for f in view.files if f.status != "unparsed" and comment_path(f) == path), None)
    if file is None:
        raise ApplicationError(f"{path} is not a file of this candidate's diff.")
    numbers = {
        (d.old_no if side == LineComment.Side.OLD else d.new_no)
        for hunk in file.hunks
        for d in hunk.lines
    }
    for number in (line, end_line):
        if number is not None and number not in numbers:
            raise ApplicationError(
                f"Line {number} {'before' if side == 'old' else 'after'} the change is not "
                f"shown in the diff of {path}."
            )
    return path, side, line, end_line


def _lock_claim_of(task: Task, reviewer: User) -> ReviewClaim:
    """The reviewer's open claim, locked like the decision locks it: a comment racing the
    reviewer's own decision lands before it (and is attached) or sees the claim ended."""
    claim = (
        ReviewClaim.objects.select_for_update()
        .filter(task=task, ended_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )
    if claim is None or claim.reviewer_id != reviewer.pk:
        raise ConflictError("Claim this task to comment on it (your claim may have expired).")
    return claim


def _reviewer_may_write(task: Task, reviewer: User) -> None:
    if not is_reviewer(reviewer):
        raise PermissionDeniedError("Only the task's contractor or its reviewer can comment.")
    if task.status != Task.Status.SUBMITTED:
        raise ConflictError(
            f"Task #{task.pk} is {task.get_status_display().lower()}; reviewers comment only "
            "on a submitted task."
        )
    _lock_claim_of(task, reviewer)


def _contractor_may_write(task: Task, contractor: User, candidate: Candidate | None) -> None:
    if not is_contractor(contractor):
        raise PermissionDeniedError("Only the task's contractor or its reviewer can comment.")
    if task.status != Task.Status.AWAITING_PREFERENCE:
        raise ApplicationError(
            f"Comments can be changed only while the task awaits your judgement; it is "
            f"{task.get_status_display().lower()}."
        )
    if candidate is None:
        return
    latest_turn = task.turns.order_by("-number").values_list("number", flat=True).first()
    if not contractor_may_comment_on(task=task, candidate=candidate, latest_turn=latest_turn or 0):
        raise ApplicationError("Only the candidates of the turn you are judging take comments.")


def _locked_task(candidate: Candidate) -> Task:
    # Locked like task_submit locks it: a comment racing the submit lands before the
    # submitted judgement or is refused, never after it.
    return Task.objects.select_for_update().get(pk=candidate.turn.task_id)


@transaction.atomic
def line_comment_add(
    *,
    candidate: Candidate,
    by: User,
    path: Any,
    side: Any,
    line: Any,
    text: Any,
    end_line: Any = None,
) -> LineComment:
    """Comment on `line` (to `end_line`, a range) of one side of one file of the diff.

    The task's contractor comments as part of their judgement; a reviewer holding the claim
    writes a draft that their decision attaches to the review. The place must be a line the
    diff shows on that side. Raises ApplicationError (400), PermissionDeniedError (403) or
    ConflictError (409) with a message the person can act on.
    """
    task = _locked_task(candidate)
    candidate = Candidate.objects.select_related("turn").get(pk=candidate.pk)
    if task.contractor_id == by.pk:
        role = LineComment.Role.CONTRACTOR
        _contractor_may_write(task, by, candidate)
    else:
        role = LineComment.Role.REVIEWER
        _reviewer_may_write(task, by)
    text = _check_text(text)
    path, side, line, end_line = _check_place(
        candidate=candidate, path=path, side=side, line=line, end_line=end_line
    )
    mine = LineComment.objects.filter(candidate=candidate, author=by)
    if mine.count() >= COMMENTS_MAX_PER_CANDIDATE:
        raise ApplicationError(
            f"At most {COMMENTS_MAX_PER_CANDIDATE} comments per candidate; remove some first."
        )
    comment = LineComment(
        candidate=candidate,
        author=by,
        role=role,
        round=task.round,
        path=path,
        side=side,
        line=line,
        end_line=end_line,
        text=text,
    )
    comment.full_clean()
    comment.save()
    return comment


@transaction.atomic
def line_comment_delete(*, comment: LineComment, by: User) -> None:
    """Remove one's own comment, under the rules for writing one; a reviewer's comment is
    fixed once their decision took it. Deleting a comment already gone is harmless."""
    if comment.author_id != by.pk:
        raise PermissionDeniedError("You can delete only your own comments.")
    task = _locked_task(comment.candidate)
    if comment.role == LineComment.Role.CONTRACTOR:
        _contractor_may_write(task, by, None)
    else:
        if comment.review_id is not None:
            raise ConflictError("This comment is part of a decided review and stays as it is.")
        _reviewer_may_write(task, by)
    LineComment.objects.filter(pk=comment.pk, review__isnull=True).delete()


def line_comments_attach(*, review: Review) -> int:
    """Attach the deciding reviewer's draft comments on this round to their decision.

    Called inside the decision's transaction, while it holds the claim's lock.
    """
    return LineComment.objects.filter(
        candidate__turn__task_id=review.task_id,
        author_id=review.reviewer_id,
        role=LineComment.Role.REVIEWER,
        round=review.round,
        review__isnull=True,
    ).update(review=review, updated_at=timezone.now())
