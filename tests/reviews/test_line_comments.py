"""Line comments: who may write them when, where they may point, and who reads them."""

from __future__ import annotations

import pytest

from marlin.exceptions import ApplicationError, ConflictError, PermissionDeniedError
from reviews.claim_services import review_claim, review_release
from reviews.comment_selectors import line_comments_visible
from reviews.comment_services import (
    COMMENTS_MAX_PER_CANDIDATE,
    comment_path,
    line_comment_add,
    line_comment_delete,
)
from reviews.models import LineComment
from tasks import services as task_services
from tasks.diffview import candidate_diff_view
from tests.factories import UserFactory
from tests.tasks.helpers import create_task, decide, generate_all, submit, valid_scores


def shown(cand, side="new") -> tuple[str, list[int]]:
    """The first file of the candidate's diff and its line numbers shown on `side` (the demo
    models' change depends on the endpoints' names, so tests read it from the diff)."""
    file = candidate_diff_view(cand).files[0]
    attr = "new_no" if side == "new" else "old_no"
    numbers = [getattr(d, attr) for h in file.hunks for d in h.lines]
    return comment_path(file), sorted(n for n in numbers if n is not None)


@pytest.fixture
def awaiting(ready_repository, project, contractor):
    return generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )


def candidate(task, slot="A", turn=None):
    turn = turn or task.turns.order_by("-number").first()
    return turn.candidates.get(slot=slot)


def add(task, by, slot="A", **place):
    cand = candidate(task, slot)
    path, lines = shown(cand, place.get("side", "new"))
    fields = {"path": path, "side": "new", "line": lines[0], "text": "Why here?", **place}
    return line_comment_add(candidate=cand, by=by, **fields)


def reviewer_two():
    from marlin import roles

    return UserFactory(username="rex", role=roles.REVIEWER)


def test_the_contractor_comments_on_a_range_of_the_diff(awaiting, contractor):
    path, lines = shown(candidate(awaiting))
    comment = add(
        awaiting, contractor, line=lines[0], end_line=lines[-1], text="  Kept.\r\nGood.  "
    )
    assert (comment.role, comment.round, comment.review_id) == ("contractor", 1, None)
    assert (comment.path, comment.side) == (path, "new")
    assert (comment.line, comment.end_line) == (lines[0], lines[-1])
    assert comment.text == "Kept.\nGood."


def test_a_one_line_range_is_stored_as_one_line(awaiting, contractor):
    line = shown(candidate(awaiting))[1][0]
    assert add(awaiting, contractor, line=line, end_line=line).end_line is None


def test_a_line_before_the_change_is_on_the_old_side(awaiting, contractor):
    line = shown(candidate(awaiting), "old")[1][-1]
    assert add(awaiting, contractor, side="old", line=line).side == "old"


@pytest.mark.parametrize(
    ("place", "message"),
    [
        ({"side": "left"}, 'side must be "old"'),
        ({"path": ""}, "path must be 1 to 1000"),
        ({"path": "x" * 1001}, "path must be 1 to 1000"),
        ({"line": 0}, "line must be a positive number"),
        ({"line": "3"}, "line must be a positive number"),
        ({"line": True}, "line must be a positive number"),
        ({"line": 3, "end_line": 2}, "range must end on or after"),
        ({"text": " \n "}, "needs some text"),
        ({"text": "x" * 5001}, "limited to 5000 characters"),
        ({"path": "docs/x.py"}, "docs/x.py is not a file of this candidate's diff"),
        ({"path": "/dev/null"}, "/dev/null is not a file of this candidate's diff"),
        ({"line": 999}, "Line 999 after the change is not shown in the diff"),
        ({"side": "old", "line": 999}, "Line 999 before the change is not shown"),
        ({"end_line": 999}, "Line 999 after the change is not shown"),
    ],
)
def test_it_refuses_a_comment_that_points_nowhere(awaiting, contractor, place, message):
    with pytest.raises(ApplicationError, match=message):
        add(awaiting, contractor, **place)
    assert not LineComment.objects.exists()


def test_the_contractor_cannot_comment_once_submitted(awaiting, contractor):
    submit(awaiting)
    with pytest.raises(ApplicationError, match="only while the task awaits your judgement"):
        add(awaiting, contractor)
    assert not LineComment.objects.exists()


def test_another_contractor_cannot_comment(awaiting, other_contractor):
    with pytest.raises(PermissionDeniedError, match="Only the task's contractor or its reviewer"):
        add(awaiting, other_contractor)


def test_an_earlier_turn_takes_comments_only_while_revising(awaiting, contractor, reviewer):
    task_services.task_follow_up(
        task=awaiting,
        by=contractor,
        preference=-2,
        scores=valid_scores(awaiting.project),
        justification="A handles the zero case; B crashes.",
        prompt="Now add a test.",
    )
    generate_all(awaiting)
    first = awaiting.turns.get(number=1)
    path, lines = shown(candidate(awaiting, turn=first))
    fields = {"path": path, "side": "new", "line": lines[0], "text": "Hm."}
    with pytest.raises(ApplicationError, match="Only the candidates of the turn you are judging"):
        line_comment_add(candidate=candidate(awaiting, turn=first), by=contractor, **fields)
    submit(awaiting)
    decide(awaiting, reviewer=reviewer, decision="BOUNCE", feedback="Look again.")
    task_services.task_revise(task=awaiting, by=contractor)
    # A revision judges every turn again, so the first turn's diffs take comments now.
    comment = line_comment_add(candidate=candidate(awaiting, turn=first), by=contractor, **fields)
    assert comment.round == 2


def test_a_reviewer_comments_only_while_holding_the_claim(awaiting, contractor, reviewer):
    with pytest.raises(ConflictError, match="reviewers comment only on a submitted task"):
        add(awaiting, reviewer)
    submit(awaiting)
    with pytest.raises(ConflictError, match="Claim this task to comment on it"):
        add(awaiting, reviewer)
    rex = reviewer_two()
    review_claim(task=awaiting, reviewer=rex)
    with pytest.raises(ConflictError, match="Claim this task to comment on it"):
        add(awaiting, reviewer)
    assert add(awaiting, rex).role == "reviewer"


def test_someone_without_a_role_cannot_comment(awaiting, outsider):
    submit(awaiting)
    with pytest.raises(PermissionDeniedError, match="Only the task's contractor or its reviewer"):
        add(awaiting, outsider)


def test_a_draft_is_seen_by_its_reviewer_only_until_the_bounce(awaiting, contractor, reviewer):
    mine = add(awaiting, contractor, text="A keeps the imports.")
    submit(awaiting)
    review_claim(task=awaiting, reviewer=reviewer)
    draft = add(awaiting, reviewer, slot="B", text="Is this note needed?")
    rex = reviewer_two()
    assert set(line_comments_visible(task=awaiting, viewer=reviewer)) == {mine, draft}
    assert set(line_comments_visible(task=awaiting, viewer=rex)) == {mine}
    assert set(line_comments_visible(task=awaiting, viewer=contractor)) == {mine}

    review = decide(awaiting, reviewer=reviewer, decision="BOUNCE", feedback="See the lines.")

    draft.refresh_from_db()
    assert draft.review == review
    # Now bounce feedback: the contractor reads it in place, and so do other reviewers.
    assert set(line_comments_visible(task=awaiting, viewer=contractor)) == {mine, draft}
    assert set(line_comments_visible(task=awaiting, viewer=rex)) == {mine, draft}
    with pytest.raises(ConflictError, match="part of a decided review"):
        line_comment_delete(comment=draft, by=reviewer)


def test_a_draft_of_an_earlier_round_is_not_sent_with_a_later_decision(
    awaiting, contractor, reviewer
):
    submit(awaiting)
    review_claim(task=awaiting, reviewer=reviewer)
    stale = add(awaiting, reviewer, text="Drafted, then I let the task go.")
    review_release(task=awaiting, reviewer=reviewer)
    decide(awaiting, reviewer=reviewer_two(), decision="BOUNCE", feedback="Redo.")
    task_services.task_revise(task=awaiting, by=contractor)
    submit(awaiting)

    decide(awaiting, reviewer=reviewer, decision="ACCEPT")

    stale.refresh_from_db()
    assert stale.review is None
    assert stale not in line_comments_visible(task=awaiting, viewer=contractor)


def test_only_the_deciding_reviewers_drafts_join_the_decision(awaiting, reviewer):
    submit(awaiting)
    rex = reviewer_two()
    review_claim(task=awaiting, reviewer=rex)
    theirs = add(awaiting, rex)
    review_release(task=awaiting, reviewer=rex)
    decide(awaiting, reviewer=reviewer, decision="BOUNCE", feedback="Redo.")
    theirs.refresh_from_db()
    assert theirs.review is None


def test_the_contractor_deletes_own_comments_while_judging(awaiting, contractor, other_contractor):
    comment = add(awaiting, contractor)
    with pytest.raises(PermissionDeniedError, match="only your own comments"):
        line_comment_delete(comment=comment, by=other_contractor)
    line_comment_delete(comment=comment, by=contractor)
    assert not LineComment.objects.exists()


def test_a_submitted_comment_cannot_be_deleted(awaiting, contractor):
    comment = add(awaiting, contractor)
    submit(awaiting)
    with pytest.raises(ApplicationError, match="only while the task awaits your judgement"):
        line_comment_delete(comment=comment, by=contractor)
    assert LineComment.objects.filter(pk=comment.pk).exists()


def test_a_reviewer_deletes_a_draft_only_while_holding_the_claim(awaiting, reviewer):
    submit(awaiting)
    review_claim(task=awaiting, reviewer=reviewer)
    draft = add(awaiting, reviewer)
    review_release(task=awaiting, reviewer=reviewer)
    with pytest.raises(ConflictError, match="Claim this task"):
        line_comment_delete(comment=draft, by=reviewer)
    review_claim(task=awaiting, reviewer=reviewer)
    line_comment_delete(comment=draft, by=reviewer)
    assert not LineComment.objects.exists()


def test_comments_per_candidate_are_bounded(awaiting, contractor):
    c = candidate(awaiting)
    LineComment.objects.bulk_create(
        LineComment(
            candidate=c, author=contractor, role="contractor", round=1, path="p", side="new",
            line=1, text="x",
        )
        for _ in range(COMMENTS_MAX_PER_CANDIDATE)
    )  # fmt: skip
    with pytest.raises(ApplicationError, match=f"At most {COMMENTS_MAX_PER_CANDIDATE} comments"):
        add(awaiting, contractor)
    # The bound is per candidate: the other one still takes comments.
    assert add(awaiting, contractor, slot="B").pk


def test_an_added_line_has_no_place_before_the_change(awaiting, contractor):
    cand = candidate(awaiting)
    path, new_lines = shown(cand)
    old_lines = set(shown(cand, "old")[1])
    file = candidate_diff_view(cand).files[0]
    added = next(d.new_no for h in file.hunks for d in h.lines if d.kind == "add")
    # The demo's note sits at new line `added`; the old side shows no line there unless a
    # context line happens to carry that old number.
    if added not in old_lines:
        with pytest.raises(ApplicationError, match=f"Line {added} before the change"):
            add(awaiting, contractor, side="old", line=added)
    assert added in new_lines
