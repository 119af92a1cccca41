"""Review rounds in a real browser: a bounce with notes in place, a revision, the round-2
highlights the reviewer sees, acceptance and the contractor's earnings.

The task is created, generated in-process and submitted through the services
(tests.tasks.helpers), so no Celery worker is needed; everything after that goes through
the pages.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from reviews.models import Earning, Review, ReviewNote
from tasks.models import Judgement, Task, Turn
from tests.browser.conftest import ARTIFACTS_DIR
from tests.browser.review_steps import decide, nav
from tests.tasks.helpers import create_task, generate_all, submit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FEEDBACK = "Look again at how A treats untrusted input before you rate it."
SECURITY_NOTE = "A passes the divisor straight through: is a 4 on security fair?"
TURN_NOTE = "The prompt also asks for a test; check that both candidates add one."
# tests.tasks.helpers.submit writes the first one; the revision swaps one word.
FIRST_JUSTIFICATION = "A handles the zero case; B crashes."
SECOND_JUSTIFICATION = "A handles the zero divisor; B crashes."
SCREENSHOT = ARTIFACTS_DIR / "review-round-2.png"


@pytest.fixture
def submitted_task(ready_repository, project, contractor) -> Task:
    task = generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )
    assert task.status == Task.Status.AWAITING_PREFERENCE
    task = submit(task)  # A scored 4 and B 2 on every axis, "A better"
    assert task.status == Task.Status.SUBMITTED
    assert task.round == 1
    assert Judgement.objects.get(turn__task=task).justification == FIRST_JUSTIFICATION
    return task


def _open_from_queue(page: Page, task: Task, *, round_: int) -> None:
    """From the review queue: check the row (round, waiting time), open the task and claim it."""
    nav(page, "Review queue")
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    row = page.locator(f'#queue tr[data-task="{task.pk}"]')
    expect(row).to_be_visible()
    cells = row.locator("td")
    expect(cells.nth(4)).to_have_text(str(round_))  # Round
    expect(cells.nth(5)).to_have_text(re.compile(r"^\d+\s+(minute|hour|day)s?\b"))  # Waiting
    row.get_by_role("link", name=f"#{task.pk} {task.title}").click()
    expect(page).to_have_url(re.compile(rf"/reviews/tasks/{task.pk}/$"))
    meta = page.locator("p.meta")
    expect(meta).to_contain_text(f"round {round_}")
    expect(meta).to_contain_text(re.compile(r"waiting \d+\s+(minute|hour|day)"))
    page.get_by_role("button", name="Claim to review").click()
    expect(page.get_by_role("status")).to_contain_text(f"Task #{task.pk} is yours until")
    expect(page.locator("form#review-form")).to_be_visible()


def test_a_bounce_with_notes_is_revised_shown_as_changes_accepted_and_paid(
    log_in, project, contractor, reviewer, submitted_task
):
    task = submitted_task
    turn = Turn.objects.get(task=task)
    pay = f"${Decimal(project.pay_per_task):.2f}"
    assert pay == "$280.00"

    # 1. The reviewer claims round 1 and bounces it with general feedback and two notes.
    rita = log_in(reviewer)
    _open_from_queue(rita, task, round_=1)
    expect(rita.locator("#round-changes")).to_have_count(0)  # nothing to compare in round 1
    security_a = rita.locator(f'textarea[name="note-{turn.pk}-A-security"]')
    expect(security_a).to_have_attribute("aria-label", "Note on Security of A")
    rita.get_by_label("Note on Security of A", exact=True).fill(SECURITY_NOTE)
    rita.locator(f'textarea[name="note-{turn.pk}"]').fill(TURN_NOTE)
    decide(rita, task, decision="Bounce", feedback=FEEDBACK)

    task.refresh_from_db()
    assert task.status == Task.Status.BOUNCED
    review = Review.objects.get(task=task, round=1)
    assert review.decision == Review.Decision.BOUNCE
    assert review.feedback == FEEDBACK
    assert sorted(
        ReviewNote.objects.filter(review=review).values_list("turn_id", "slot", "field", "text")
    ) == sorted([(turn.pk, "A", "security", SECURITY_NOTE), (turn.pk, "", "", TURN_NOTE)])

    # 2. The contractor is notified, reads the feedback and the notes in place, and revises.
    carol = log_in(contractor)
    badge = carol.locator("#unread-count")
    expect(badge).to_have_text("1")
    expect(badge).to_have_attribute("aria-label", "1 unread")
    nav(carol, "My tasks")
    carol.get_by_role("link", name=f"#{task.pk} {task.title}").click()
    expect(carol).to_have_url(re.compile(rf"/tasks/{task.pk}/$"))
    task_status = carol.locator("#task-status")
    expect(task_status).to_have_attribute("data-status", "BOUNCED")
    feedback = carol.locator("#review-feedback")
    expect(feedback).to_contain_text("Reviewer feedback on round 1")
    expect(feedback).to_contain_text(FEEDBACK)

    carol.get_by_role("button", name="Revise and resubmit").click()
    expect(task_status).to_have_attribute("data-status", "AWAITING_PREFERENCE")
    expect(carol.locator("p.meta")).to_contain_text("round 2")
    expect(carol.locator("#review-feedback")).to_contain_text(FEEDBACK)

    form = carol.locator("form#judgement")
    expect(form).to_be_visible()
    security_row = form.locator('.rubric-axis[data-axis="security"]')
    expect(security_row).to_have_count(1)
    expect(security_row.locator(".rubric-head")).to_have_text("Security")
    slots = security_row.locator("fieldset.rubric-slot")
    a_cell, b_cell = slots.nth(0), slots.nth(1)
    # The note sits next to candidate A's security score inputs, and only there.
    expect(a_cell.locator('input[name="score_A_security"]')).to_have_count(5)
    expect(a_cell.locator(".note")).to_have_count(1)
    expect(a_cell.locator(".note")).to_contain_text(SECURITY_NOTE)
    expect(b_cell.locator(".note")).to_have_count(0)
    expect(form.locator(".note")).to_have_count(1)
    # The turn note is with the prompt.
    current_turn = carol.locator("#current-turn")
    expect(current_turn.locator(".note")).to_have_count(1)
    expect(current_turn.locator(".note")).to_contain_text(TURN_NOTE)

    # The revision starts from round 1's judgement.
    expect(form.locator('input[name="score_A_security"][value="4"]')).to_be_checked()
    justification = form.get_by_label("Justification")
    expect(justification).to_have_value(FIRST_JUSTIFICATION)
    expect(form.get_by_label("A better", exact=True)).to_be_checked()

    form.locator('input[name="score_A_security"][value="3"]').check()
    justification.fill(SECOND_JUSTIFICATION)
    form.get_by_role("button", name="Submit for review").click()
    expect(task_status).to_have_attribute("data-status", "SUBMITTED")
    expect(task_status).to_have_text("Submitted for review")

    task.refresh_from_db()
    assert task.status == Task.Status.SUBMITTED
    assert task.round == 2
    second = Judgement.objects.get(turn=turn, round=2)
    assert second.scores["A"]["security"] == 3
    assert second.justification == SECOND_JUSTIFICATION

    # 3. The reviewer opens round 2 and sees what changed since round 1, then accepts.
    _open_from_queue(rita, task, round_=2)
    expect(rita.locator("#round-changes")).to_be_visible()
    expect(rita.locator("#round-changes")).to_contain_text("changed since round 1")
    judgement = rita.locator("#judgement-1")
    changed_cell = judgement.locator('td[data-score="A-security"]')
    expect(changed_cell).to_have_class(re.compile(r"\bchanged\b"))
    expect(changed_cell).to_contain_text("3")
    expect(changed_cell.locator(".was")).to_have_text("was 4")
    expect(judgement.locator("td.changed")).to_have_count(1)  # the one score that changed
    expect(judgement.locator('td[data-score="B-security"]')).not_to_have_class(
        re.compile(r"\bchanged\b")
    )
    expect(rita.locator("#preference-1")).not_to_have_class(re.compile(r"\bchanged\b"))
    diff = rita.locator("#justification-diff-1")
    expect(diff).to_be_visible()
    expect(diff.locator("ins.added")).to_have_count(1)
    expect(diff.locator("ins.added")).to_have_text(re.compile(r"^\s*divisor;\s*$"))
    expect(diff.locator("del.removed")).to_have_count(1)
    expect(diff.locator("del.removed")).to_have_text(re.compile(r"^\s*case;\s*$"))
    expect(diff).to_contain_text("A handles the zero")
    expect(diff).to_contain_text("B crashes.")
    # The round-1 decision and its notes are on record.
    earlier = rita.locator("#earlier-rounds")
    expect(earlier).to_contain_text("Round 1: Bounce")
    expect(earlier).to_contain_text(FEEDBACK)
    expect(earlier).to_contain_text(SECURITY_NOTE)
    expect(earlier).to_contain_text(TURN_NOTE)

    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    rita.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.is_file()
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert SCREENSHOT.stat().st_size > 20_000, SCREENSHOT.stat().st_size

    decide(rita, task, decision="Accept")

    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED
    assert task.round == 2
    earning = Earning.objects.get(task=task)
    assert earning.amount == Decimal(project.pay_per_task)
    assert earning.contractor_id == contractor.pk

    # 4. The contractor's earnings page shows the accepted pay.
    nav(carol, "Earnings")
    expect(carol.get_by_role("heading", name="My tasks and earnings")).to_be_visible()
    expect(carol.locator("#earnings-accepted")).to_have_text(pay)
    expect(carol.locator("#earnings-pending")).to_have_text("$0.00")
    expect(carol.locator("#earnings-total")).to_have_text(pay)
    row = carol.locator(f'#earnings-tasks tr[data-task="{task.pk}"]')
    expect(row).to_have_count(1)
    cells = row.locator("td")
    expect(cells.nth(2)).to_have_text("Accepted")
    expect(cells.nth(3)).to_have_text("2")
    expect(cells.nth(5)).to_have_text(pay)
