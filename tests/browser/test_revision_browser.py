"""Revising an earlier turn in a real browser (issue 12, item 1): a bounce with a note on turn
1's preference of a two-turn task, the contractor revising turn 1 beside that note (a reload
keeps the typing), the reviewer seeing the change highlighted, and the export holding the
revised turn 1 with the original round still in its history.

The two-turn task is created, generated in-process (demo models) and submitted through the
services (tests.tasks.helpers), so no Celery worker is needed; everything after that goes
through the pages, and the export through the management command.
"""

from __future__ import annotations

import json
import re

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from reviews.models import Review, ReviewNote
from tasks import services
from tasks.models import Judgement, JudgementDraft, Task, Turn
from tests.browser.conftest import ARTIFACTS_DIR
from tests.browser.review_steps import decide, nav
from tests.tasks.helpers import create_task, generate_all, submit, valid_scores

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FEEDBACK = "Turn 1 deserves a second look before this goes out."
PREFERENCE_NOTE = "A is far ahead on every axis: is “A better” strong enough for turn 1?"
FIRST_JUSTIFICATION = "A guards the zero divisor; B divides blindly."
REVISED_JUSTIFICATION = "A guards the zero divisor and explains it; B divides blindly."
# tests.tasks.helpers.submit writes this one (turn 2).
TURN_2_JUSTIFICATION = "A handles the zero case; B crashes."
FOLLOW_UP = "Now also guard add() against None."
SCREENSHOT = ARTIFACTS_DIR / "revision-round-2.png"
CHANGED = re.compile(r"\bchanged\b")


@pytest.fixture
def two_turn_task(ready_repository, project, contractor) -> Task:
    """Turn 1 judged "A better" (A 4, B 2 everywhere) with a follow-up; turn 2 the same."""
    assert project.max_turns >= 2
    task = generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )
    assert task.status == Task.Status.AWAITING_PREFERENCE
    services.task_follow_up(
        task=task, by=contractor, preference=-2, scores=valid_scores(project),
        justification=FIRST_JUSTIFICATION, prompt=FOLLOW_UP,
    )  # fmt: skip
    task = generate_all(task)
    assert task.status == Task.Status.AWAITING_PREFERENCE
    task = submit(task)  # turn 2: A 4 and B 2 on every axis, "A better"
    assert task.status == Task.Status.SUBMITTED
    assert task.round == 1
    judged = Judgement.objects.filter(turn__task=task).order_by("turn__number")
    assert [(j.turn.number, j.round, j.preference, j.warnings) for j in judged] == [
        (1, 1, -2, []),
        (2, 1, -2, []),
    ]
    return task


def _claim_from_queue(page: Page, task: Task, *, round_: int) -> None:
    nav(page, "Review queue")
    row = page.locator(f'#queue tr[data-task="{task.pk}"]')
    expect(row.locator("td").nth(4)).to_have_text(str(round_))  # Round
    row.get_by_role("link", name=f"#{task.pk} {task.title}").click()
    expect(page).to_have_url(re.compile(rf"/reviews/tasks/{task.pk}/$"))
    expect(page.locator("p.meta")).to_contain_text(f"round {round_}")
    page.get_by_role("button", name="Claim to review").click()
    expect(page.get_by_role("status")).to_contain_text(f"Task #{task.pk} is yours until")
    expect(page.locator("form#review-form")).to_be_visible()


def _export(fmt: str, tmp_path) -> list[dict]:
    out = tmp_path / f"export-{fmt}.jsonl"
    call_command("export_dataset", "--format", fmt, "-o", str(out))
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def test_a_revised_earlier_turn_is_noted_kept_on_reload_highlighted_and_exported(
    log_in, project, contractor, reviewer, two_turn_task, tmp_path
):
    task = two_turn_task
    turn_1, turn_2 = Turn.objects.filter(task=task).order_by("number")

    # 1. The reviewer bounces round 1 with a note on turn 1's preference.
    rita = log_in(reviewer)
    _claim_from_queue(rita, task, round_=1)
    note_input = rita.locator("section#judgement-1").get_by_label(
        "Note on the preference", exact=True
    )
    expect(note_input).to_have_attribute("name", f"note-{turn_1.pk}-preference")
    note_input.fill(PREFERENCE_NOTE)
    decide(rita, task, decision="Bounce", feedback=FEEDBACK)

    task.refresh_from_db()
    assert task.status == Task.Status.BOUNCED
    review = Review.objects.get(task=task, round=1)
    assert review.decision == Review.Decision.BOUNCE
    assert list(ReviewNote.objects.filter(review=review).values_list("turn_id", "slot", "field", "text")) == [
        (turn_1.pk, "", "preference", PREFERENCE_NOTE)
    ]  # fmt: skip

    # 2. The contractor reads the feedback, revises, and finds turn 1 editable beside the note.
    carol = log_in(contractor)
    carol.goto(f"/tasks/{task.pk}/")
    task_status = carol.locator("#task-status")
    expect(task_status).to_have_attribute("data-status", "BOUNCED")
    expect(carol.locator("#review-feedback")).to_contain_text(FEEDBACK)
    carol.get_by_role("button", name="Revise and resubmit").click()
    expect(task_status).to_have_attribute("data-status", "AWAITING_PREFERENCE")
    expect(carol.locator("p.meta")).to_contain_text("round 2")

    earlier = carol.locator("details#turn-1")
    expect(earlier).to_have_attribute("open", "")
    judgement_1 = earlier.locator("div#judgement-turn-1")
    expect(judgement_1).to_be_visible()
    # Guards "earlier turns are editable while revising": seven preference radios, prefixed,
    # belonging to the latest turn's form, pre-filled from round 1.
    preference_1 = judgement_1.locator('fieldset.preference[data-turn="1"]')
    radios_1 = preference_1.locator('input[type="radio"][name="turn1-preference"]')
    expect(radios_1).to_have_count(7)
    expect(radios_1.first).to_have_attribute("form", "judgement")
    expect(preference_1.get_by_label("A better", exact=True)).to_be_checked()
    expect(judgement_1.locator('input[name="turn1-score_A_security"][value="4"]')).to_be_checked()
    expect(judgement_1.locator('input[name="turn1-score_B_security"][value="2"]')).to_be_checked()
    justification_1 = judgement_1.locator('textarea[name="turn1-justification"]')
    expect(justification_1).to_have_attribute("form", "judgement")
    expect(justification_1).to_have_value(FIRST_JUSTIFICATION)
    # The note sits right after turn 1's preference fieldset, and nowhere else.
    note = judgement_1.locator('fieldset.preference[data-turn="1"] + div.note[role="note"]')
    expect(note).to_be_visible()
    expect(note.locator("strong")).to_have_text("Reviewer's note on the preference:")
    expect(note).to_contain_text(PREFERENCE_NOTE)
    expect(carol.locator(".note")).to_have_count(1)

    form = carol.locator("form#judgement")
    expect(form.locator('fieldset.preference[data-turn="2"]').get_by_label("A better", exact=True)).to_be_checked()  # fmt: skip
    expect(form.get_by_label("Justification")).to_have_value(TURN_2_JUSTIFICATION)

    # 3. Turn 1 becomes "A much better"; the draft survives a reload.
    draft_status = carol.locator("#draft-status")
    expect(draft_status).to_have_text("")
    preference_1.get_by_label("A much better", exact=True).check()
    expect(draft_status).to_have_text("Draft saved")
    draft = JudgementDraft.objects.get(turn=turn_1, round=2)
    assert draft.data["preference"] == "-3"
    assert draft.data["justification"] == FIRST_JUSTIFICATION
    carol.reload()
    preference_1 = carol.locator('#judgement-turn-1 fieldset.preference[data-turn="1"]')
    expect(preference_1.locator('input[name="turn1-preference"][value="-3"]')).to_be_checked()
    expect(preference_1.locator('input[name="turn1-preference"][value="-2"]')).not_to_be_checked()

    carol.locator('#judgement-turn-1 textarea[name="turn1-justification"]').fill(
        REVISED_JUSTIFICATION
    )
    carol.locator("form#judgement").get_by_role("button", name="Submit for review").click()
    expect(task_status).to_have_attribute("data-status", "SUBMITTED")

    task.refresh_from_db()
    assert task.status == Task.Status.SUBMITTED
    assert task.round == 2
    judged = {
        (j.turn.number, j.round): (j.preference, j.justification)
        for j in Judgement.objects.filter(turn__task=task).select_related("turn")
    }
    assert judged == {
        (1, 1): (-2, FIRST_JUSTIFICATION),
        (1, 2): (-3, REVISED_JUSTIFICATION),
        (2, 1): (-2, TURN_2_JUSTIFICATION),
        (2, 2): (-2, TURN_2_JUSTIFICATION),
    }

    # Leave the workspace, whose heartbeat would otherwise post while the test database is
    # being flushed at teardown (a deadlock): "My tasks" shows the task back under review.
    nav(carol, "My tasks")
    row = carol.locator("table.list tbody tr").filter(has_text=f"#{task.pk} {task.title}")
    expect(row.locator("td").nth(3)).to_have_text("Submitted for review")
    expect(row.locator("td").nth(4)).to_have_text("2")

    # 4. The reviewer sees turn 1's change highlighted, turn 2 untouched, and accepts.
    _claim_from_queue(rita, task, round_=2)
    expect(rita.locator("#round-changes")).to_contain_text("changed since round 1")
    changed_preference = rita.locator("#preference-1")
    expect(changed_preference).to_have_class(CHANGED)
    expect(changed_preference.locator("strong")).to_have_text("A much better")
    expect(changed_preference.locator(".was")).to_have_text("was A better")
    diff = rita.locator("#justification-diff-1")
    expect(diff).to_be_visible()
    expect(diff.locator("ins.added")).to_have_count(1)
    # Words are diffed with their punctuation: "divisor;" became "divisor and explains it;".
    expect(diff.locator("ins.added")).to_have_text(re.compile(r"^\s*divisor and explains it;\s*$"))
    expect(diff.locator("del.removed")).to_have_count(1)
    expect(diff.locator("del.removed")).to_have_text(re.compile(r"^\s*divisor;\s*$"))
    expect(diff).to_contain_text("A guards the zero")
    expect(rita.locator("#judgement-1 td.changed")).to_have_count(0)  # no score changed
    expect(rita.locator("#preference-2")).not_to_have_class(CHANGED)
    expect(rita.locator("#justification-diff-2")).to_have_count(0)
    expect(rita.locator("#earlier-rounds")).to_contain_text(PREFERENCE_NOTE)
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    rita.screenshot(path=str(SCREENSHOT), full_page=True)
    decide(rita, task, decision="Accept")

    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED

    # 5. The export holds the revised turn 1, with round 1 kept in its history.
    native = [r for r in _export("native", tmp_path) if r["task_id"] == task.pk]
    assert [r["turn"] for r in native] == [1, 2]
    first = native[0]
    assert first["preference"] == -3
    assert first["preferred_slot"] == "A"
    assert first["justification"] == REVISED_JUSTIFICATION
    assert first["round_judged"] == 2
    history = first["judgement_history"]
    assert isinstance(history, list)
    assert [h["round"] for h in history] == [1, 2]
    assert (history[0]["preference"], history[0]["justification"]) == (-2, FIRST_JUSTIFICATION)
    assert (history[1]["preference"], history[1]["justification"]) == (-3, REVISED_JUSTIFICATION)
    assert (native[1]["preference"], native[1]["round_judged"]) == (-2, 2)

    trl = _export("trl", tmp_path)
    assert len(trl) == len(native) == 2  # only this task; neither pair is left out
    assert trl[0]["chosen"][0]["content"] == first["candidates"]["A"]["answer"]
    assert trl[0]["rejected"][0]["content"] == first["candidates"]["B"]["answer"]
