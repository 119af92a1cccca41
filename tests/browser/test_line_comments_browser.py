"""A line comment round-trips: the reviewer comments on a line with `c` and bounces; the
contractor reads it in place on that line, adds their own and resubmits; the reviewer
accepts; the native export carries the contractor's comment with its file, line and side.

The task is generated and submitted through the services (no Celery worker needed);
everything after that goes through the pages.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from reviews.comment_services import comment_path
from reviews.export_filters import ExportFilters
from reviews.exports import native_records
from reviews.models import LineComment, Review
from tasks.diffview import candidate_diff_view
from tasks.models import Candidate, Task
from tests.browser.review_steps import decide
from tests.tasks.helpers import submit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REVIEWER_COMMENT = "Why a note at this line? Say why in the justification <b>please</b>."
CONTRACTOR_COMMENT = "B's note lands after the last test: harmless, but off topic."


def first_added(candidate: Candidate) -> tuple[str, str, int]:
    """(file anchor, comment path, new line number) of the first added line of the diff."""
    file = candidate_diff_view(candidate).files[0]
    line = next(d.new_no for h in file.hunks for d in h.lines if d.kind == "add")
    return file.anchor, comment_path(file), line


def claim(page: Page, task: Task) -> None:
    page.goto(f"/reviews/tasks/{task.pk}/")
    page.get_by_role("button", name="Claim to review").click()
    expect(page.get_by_role("status").first).to_contain_text(f"Task #{task.pk} is yours until")
    expect(page.locator("form#review-form")).to_be_visible()


def thread_after(page: Page, link_id: str):
    """The comment row the script put right after the row of the line `link_id`."""
    return page.locator(f"tr:has(> td > a#{link_id}) + tr.line-comment-row")


def test_a_line_comment_goes_from_bounce_to_the_contractor_and_into_the_export(
    log_in, ready_task, contractor, reviewer
):
    task = submit(ready_task)
    a = task.turns.get().candidates.get(slot="A")
    b = task.turns.get().candidates.get(slot="B")
    a_anchor, a_path, a_line = first_added(a)
    b_anchor, b_path, b_line = first_added(b)
    a_link, b_link = f"{a_anchor}-R{a_line}", f"{b_anchor}-R{b_line}"

    # 1. The reviewer claims the task; `c` does nothing while they type in a field, even with
    # the address pointing at a line.
    rita = log_in(reviewer)
    claim(rita, task)
    rita.evaluate("id => { location.hash = id; }", a_link)
    feedback = rita.locator("form#review-form").get_by_label("General feedback")
    feedback.press_sequentially("c")
    expect(feedback).to_have_value("c")
    expect(rita.locator(".line-comment-form")).to_have_count(0)

    # With a line number of candidate A in focus, `c` opens the comment form on that line.
    rita.locator(f"a#{a_link}").focus()
    rita.keyboard.press("c")
    form = rita.locator(".line-comment-form")
    expect(form).to_have_count(1)
    expect(form.locator("label")).to_have_text(
        f"Comment on line {a_line} (after the change) of {a_path}"
    )
    form.locator("textarea").fill(REVIEWER_COMMENT)
    form.get_by_role("button", name="Save comment").click()
    expect(thread_after(rita, a_link)).to_contain_text(REVIEWER_COMMENT)
    expect(thread_after(rita, a_link)).to_contain_text("draft: sent with your decision")
    draft = LineComment.objects.get()
    assert (draft.role, draft.review_id, draft.path, draft.side, draft.line) == (
        "reviewer", None, a_path, "new", a_line,
    )  # fmt: skip

    decide(rita, task, decision="Bounce", feedback="See my comment on candidate A.")
    draft.refresh_from_db()
    assert draft.review == Review.objects.get(task=task, round=1)

    # 2. The contractor sees the comment in place, on that very line, as text.
    carol = log_in(contractor)
    carol.goto(f"/tasks/{task.pk}/")
    expect(carol.locator("#task-status")).to_have_attribute("data-status", "BOUNCED")
    thread = thread_after(carol, a_link)
    expect(thread).to_contain_text(REVIEWER_COMMENT)
    expect(thread).to_contain_text("Reviewer, round 1")
    expect(thread.locator(".line-comment-text b")).to_have_count(0)  # never parsed as HTML
    expect(thread.get_by_role("button", name="Delete")).to_have_count(0)

    carol.get_by_role("button", name="Revise and resubmit").click()
    expect(carol.locator("#task-status")).to_have_attribute("data-status", "AWAITING_PREFERENCE")
    expect(thread_after(carol, a_link)).to_contain_text(REVIEWER_COMMENT)

    # 3. The contractor comments on a line of B by clicking its number, and resubmits.
    carol.locator(f"a#{b_link}").click()
    form = carol.locator(".line-comment-form")
    expect(form).to_have_count(1)
    form.locator("textarea").fill(CONTRACTOR_COMMENT)
    form.get_by_role("button", name="Save comment").click()
    expect(thread_after(carol, b_link)).to_contain_text(CONTRACTOR_COMMENT)
    expect(carol.locator(".line-comment-form")).to_have_count(0)
    carol.locator("form#judgement").get_by_role("button", name="Submit for review").click()
    expect(carol.locator("#task-status")).to_have_attribute("data-status", "SUBMITTED")
    # Closed now, not at teardown: its last active-time beat must not race the database flush.
    carol.close()

    # 4. The reviewer reads the contractor's comment in place and accepts.
    claim(rita, task)
    expect(thread_after(rita, b_link)).to_contain_text(CONTRACTOR_COMMENT)
    expect(thread_after(rita, b_link)).to_contain_text("Contractor")
    decide(rita, task, decision="Accept")
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED

    # 5. The native export carries the contractor's comment (and not the reviewer's).
    (record,) = [r for r in native_records(ExportFilters()) if r["task_id"] == task.pk]
    assert record["candidates"]["B"]["line_comments"] == [
        {"path": b_path, "side": "new", "line": b_line, "end_line": None,
         "text": CONTRACTOR_COMMENT},
    ]  # fmt: skip
    assert record["candidates"]["A"]["line_comments"] == []
    assert re.search("line_comments", str(record))
