"""Quality control in a real browser: overlap gives a second contractor a judging task that
shows nothing of the first judgement, gold turns mixed in move that contractor's gold
accuracy on the admin's dashboard, and a flagged submission is marked in the review queue."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from reviews.models import GoldTurn, JudgingTask
from reviews.quality_gold import gold_turn_mark
from tests.browser.conftest import ARTIFACTS_DIR
from tests.factories import pool_endpoints
from tests.tasks.helpers import create_task, decide, generate_all, submit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# tests.tasks.helpers.submit writes this justification: every task of carol's repeats it.
FIRST_JUSTIFICATION = "A handles the zero case; B crashes."
SECOND_JUSTIFICATION = "Candidate A guards the division; candidate B still raises on zero."
PROMPTS = ("Make div safe.", "Add a power function.", "Document add.", "Add a modulo function.")


def _judge(page: Page, project, *, prefer: str) -> None:
    """Fill the judging form: `prefer` ("A" or "B", as shown) better, scores to match."""
    form = page.locator("form#judgement")
    high, low = ("A", "B") if prefer == "A" else ("B", "A")
    for slot, score in ((high, 5), (low, 2)):
        for axis in project.axis_keys:
            form.locator(f'input[name="score_{slot}_{axis}"][value="{score}"]').check()
    form.get_by_label(f"{prefer} better", exact=True).check()
    form.get_by_label("Justification").fill(SECOND_JUSTIFICATION)
    form.get_by_role("button", name="Submit judgement").click()
    expect(page.get_by_text("Judgement recorded.")).to_be_visible()


def _take_next(page: Page) -> JudgingTask:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Judge pairs").click()
    page.get_by_role("button", name="Judge the next pair").click()
    expect(page).to_have_url(re.compile(r"/reviews/judging/\d+/$"))
    return JudgingTask.objects.get(pk=int(page.url.rstrip("/").rsplit("/", 1)[1]))


def _shown_slot_of_turn_a(judging_task: JudgingTask) -> str:
    return "B" if judging_task.swapped else "A"


def _gold_accuracy_of(page: Page, project, username: str):
    page.goto(f"/reviews/dashboard/?project={project.pk}")
    return page.locator(f'#gold-accuracy tr[data-contractor="{username}"] td.accuracy')


def test_overlap_gold_and_flags_in_a_real_browser(
    log_in, project, ready_repository, contractor, other_contractor, reviewer, admin_user
):
    project.overlap_percent = 100
    project.save()
    tasks = []
    for prompt in PROMPTS:
        task = submit(
            generate_all(
                create_task(
                    contractor=contractor,
                    project=project,
                    repository=ready_repository,
                    prompt=prompt,
                )  # fmt: skip
            )
        )
        tasks.append(task)
    # Three accepted (each opens a judging task); the fourth waits in the review queue.
    for task in tasks[:3]:
        decide(task, reviewer=reviewer)
    for task in tasks[1:3]:
        gold_turn_mark(turn=task.turns.get(), by=admin_user, expected=GoldTurn.Direction.A)
    assert JudgingTask.objects.filter(status=JudgingTask.Status.OPEN).count() == 3

    # 1. The second contractor judges the first pair: nothing of carol's judgement shows.
    dave = log_in(other_contractor)
    first = _take_next(dave)
    assert first.turn.task == tasks[0] and first.gold is None
    expect(dave.locator("#judging-prompt")).to_have_text(PROMPTS[0])
    expect(dave.locator("article.candidate")).to_have_count(2)
    expect(dave.locator("article.candidate h3")).to_have_text(["Candidate A", "Candidate B"])
    expect(dave.locator("input[type=radio]:checked")).to_have_count(0)
    html = dave.content()
    assert FIRST_JUSTIFICATION not in html
    assert contractor.username not in html and reviewer.username not in html
    for endpoint in pool_endpoints(project):
        assert endpoint.name not in html and endpoint.model_id not in html
    # A vs B, remembered from the workspace, is not a mode here (the slots may be swapped):
    # the page opens side by side, and `v` cycles through the two modes it has.
    dave.evaluate("localStorage.setItem('marlin.compare', 'ab')")
    dave.reload()
    workspace = dave.locator(".workspace")
    expect(workspace).to_have_attribute("data-compare", "side")
    expect(dave.locator("article.candidate").first).to_be_visible()
    # Kept for the workspace, which has the mode.
    assert dave.evaluate("localStorage.getItem('marlin.compare')") == "ab"
    seen = []
    for _ in range(2):
        dave.keyboard.press("v")
        seen.append(workspace.get_attribute("data-compare"))
    assert seen == ["single", "side"]
    dave.screenshot(path=str(ARTIFACTS_DIR / "judging-task.png"), full_page=True)
    _judge(dave, project, prefer="A")

    # 2. Gold is mixed in: the next pairs are the gold turns, looking like any other.
    project.gold_percent = 100
    project.save()
    gold_one = _take_next(dave)
    assert gold_one.gold is not None and gold_one.turn == tasks[1].turns.get()
    assert "gold" not in dave.content().lower()
    _judge(dave, project, prefer=_shown_slot_of_turn_a(gold_one))  # right: the turn's A

    ada = log_in(admin_user)
    expect(_gold_accuracy_of(ada, project, other_contractor.username)).to_have_text("100%")

    gold_two = _take_next(dave)
    assert gold_two.gold is not None and gold_two.turn == tasks[2].turns.get()
    wrong = "A" if _shown_slot_of_turn_a(gold_two) == "B" else "B"
    _judge(dave, project, prefer=wrong)  # a miss

    accuracy = _gold_accuracy_of(ada, project, other_contractor.username)
    expect(accuracy).to_have_text("50%")
    ada.locator("#gold-accuracy").screenshot(path=str(ARTIFACTS_DIR / "gold-accuracy.png"))

    # 3. The fourth submission repeats carol's justification: the reviewer's queue says so.
    rita = log_in(reviewer)
    rita.goto("/reviews/")
    row = rita.locator(f'#queue tr[data-task="{tasks[3].pk}"]')
    expect(row.locator('[data-flag="duplicate"]')).to_be_visible()
    rita.get_by_label("Flag").select_option("duplicate")
    rita.get_by_role("button", name="Filter").click()
    expect(rita.locator("#queue tbody tr[data-task]")).to_have_count(1)
    expect(rita.locator(f'#queue tr[data-task="{tasks[3].pk}"]')).to_be_visible()
