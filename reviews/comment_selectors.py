"""Which line comments a person sees, and what the pages need to lay them over the diffs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from reviews.comment_services import comment_path, contractor_may_comment_on
from reviews.models import LineComment, ReviewClaim
from tasks.models import Candidate, Task

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def line_comments_visible(*, task: Task, viewer: User) -> QuerySet[LineComment]:
    """The task's comments `viewer` may read (the caller has checked they may see the task).

    The contractor sees their own and those of decided reviews; reviewers and admins also see
    the contractor's, and a reviewer their own drafts of the current round. Another
    reviewer's draft is seen by no one else.
    """
    decided = Q(role=LineComment.Role.REVIEWER, review__isnull=False)
    visible = Q(role=LineComment.Role.CONTRACTOR) | decided
    if task.contractor_id != viewer.pk:
        visible |= Q(author_id=viewer.pk, review__isnull=True, round=task.round)
    return (
        LineComment.objects.filter(visible, candidate__turn__task_id=task.pk)
        .select_related("review")
        .order_by("candidate_id", "path", "side", "line", "pk")
    )


def _holds_claim(task: Task, viewer: User) -> bool:
    return ReviewClaim.objects.filter(
        task=task, reviewer_id=viewer.pk, ended_at__isnull=True, expires_at__gt=timezone.now()
    ).exists()


def _author_label(comment: LineComment, viewer: User) -> str:
    if comment.author_id == viewer.pk:
        return "You"
    if comment.role == LineComment.Role.CONTRACTOR:
        return "Contractor"
    return f"Reviewer, round {comment.round}"


def line_comment_data(comment: LineComment, *, viewer: User, can_delete: bool) -> dict:
    """One comment as the page's script and the API read it."""
    return {
        "id": comment.pk,
        "candidate": comment.candidate_id,
        "path": comment.path,
        "side": comment.side,
        "line": comment.line,
        "end_line": comment.end_line,
        "text": comment.text,
        "role": comment.role,
        "round": comment.round,
        "author": _author_label(comment, viewer),
        "is_draft": comment.role == LineComment.Role.REVIEWER and comment.review_id is None,
        "delete_url": (
            reverse("reviews:line_comment_delete", args=[comment.pk]) if can_delete else ""
        ),
    }


def line_comments_page_context(
    *, task: Task, viewer: User, candidates: Iterable[Candidate]
) -> dict:
    """The `line_comments` context of the workspace and review pages (one query for the
    comments, one for a reviewer's claim): the comments, where each diff file's comments
    go (file anchor -> path), and the candidates the viewer may comment on now."""
    is_contractor = task.contractor_id == viewer.pk
    if is_contractor:
        writes = task.status == Task.Status.AWAITING_PREFERENCE
    else:
        writes = task.status == Task.Status.SUBMITTED and _holds_claim(task, viewer)
    latest_turn = max((t.number for t in task.turns.all()), default=0)
    files: dict[str, dict] = {}
    add_urls: dict[str, str] = {}
    for candidate in candidates:
        view = getattr(candidate, "diff_view", None)
        if view is None:
            continue
        for file in view.files:
            if file.status != "unparsed":
                files[file.anchor] = {"candidate": candidate.pk, "path": comment_path(file)}
        may = writes and (
            not is_contractor
            or contractor_may_comment_on(task=task, candidate=candidate, latest_turn=latest_turn)
        )
        if may:
            add_urls[str(candidate.pk)] = reverse("reviews:line_comment_add", args=[candidate.pk])
    comments = [
        line_comment_data(
            c,
            viewer=viewer,
            can_delete=writes and c.author_id == viewer.pk and c.review_id is None,
        )
        for c in line_comments_visible(task=task, viewer=viewer)
    ]
    return {"line_comments": {"comments": comments, "files": files, "add_urls": add_urls}}
