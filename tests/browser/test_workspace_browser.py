"""The judge workspace in a real browser: keyboard only, drafts, warnings, XSS and screenshots.

Candidates are generated in-process (tests.tasks.helpers.generate_all) before the page is
opened, so no Celery worker is needed here.
"""

from __future__ import annotations

import struct

import pytest
from playwright.sync_api import Page, expect

from tasks.models import Candidate, Judgement, JudgementDraft, Task, Turn
from tests.browser.conftest import ARTIFACTS_DIR
from tests.browser.workspace_steps import open_workspace, score
from tests.conftest import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

JUSTIFICATION = "B guards the zero divisor and adds a test; A still crashes on zero input."
SCRIPT_PAYLOAD = "<script>window.__pwned=1</script>"
IMG_PAYLOAD = '"><img src=x onerror=window.__pwned=1>'
EXPLANATION_IMG_PAYLOAD = '<img src=x onerror="window.__pwned=1">'
LINK_PAYLOAD = "[x](javascript:window.__pwned=1)"


def _diff_view(page: Page) -> str | None:
    return page.locator(".workspace").get_attribute("data-diff-view")


def _expect_view(page: Page, view: str) -> None:
    expect(page.locator(".workspace")).to_have_attribute("data-diff-view", view)
    split = page.locator("table.diff-split").first
    unified = page.locator("table.diff-unified").first
    if view == "split":
        expect(split).to_be_visible()
        expect(unified).to_be_hidden()
    else:
        expect(unified).to_be_visible()
        expect(split).to_be_hidden()


def test_a_contractor_judges_a_turn_with_the_keyboard_only(log_in, contractor, project, ready_task):
    page = open_workspace(log_in, contractor, ready_task)
    axes = project.axis_keys
    a_score, b_score = 2, 4  # B higher everywhere, and B is preferred: no warning

    # The only focus call: the first radio of the rubric; everything after is keystrokes.
    page.focus(f'input[name="score_A_{axes[0]}"][value="1"]')
    for index, axis in enumerate(axes):
        # Space checks the focused radio; ArrowRight moves to the next one and checks it.
        expect(score(page, "A", axis, 1)).to_be_focused()
        page.keyboard.press("Space")
        for _ in range(a_score - 1):
            page.keyboard.press("ArrowRight")
        expect(score(page, "A", axis, a_score)).to_be_checked()
        expect(score(page, "A", axis, a_score)).to_be_focused()
        # Tab leaves the group for candidate B's group on the same axis.
        page.keyboard.press("Tab")
        expect(score(page, "B", axis, 1)).to_be_focused()
        if index == 0:
            # Shift+Tab goes back into A's group, onto its checked radio, and Tab returns.
            page.keyboard.press("Shift+Tab")
            expect(score(page, "A", axis, a_score)).to_be_focused()
            page.keyboard.press("Tab")
            expect(score(page, "B", axis, 1)).to_be_focused()
        page.keyboard.press("Space")
        for _ in range(b_score - 1):
            page.keyboard.press("ArrowRight")
        expect(score(page, "B", axis, b_score)).to_be_checked()
        if index + 1 < len(axes):
            page.keyboard.press("Tab")
    for axis in axes:
        for slot, value in (("A", a_score), ("B", b_score)):
            expect(score(page, slot, axis, value)).to_be_checked()

    # "?" opens the help overlay, Escape closes it.
    dialog = page.locator("dialog#shortcuts")
    expect(dialog).to_be_hidden()
    page.keyboard.press("?")
    expect(dialog).to_be_visible()
    assert page.evaluate("document.getElementById('shortcuts').open") is True
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert page.evaluate("document.getElementById('shortcuts').open") is False

    # "s" shows split diffs, "u" unified again.
    _expect_view(page, "unified")
    page.keyboard.press("s")
    _expect_view(page, "split")
    expect(page.locator('[data-set-view="split"]')).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("u")
    _expect_view(page, "unified")

    # "7" picks "B much better".
    page.keyboard.press("7")
    b_much_better = page.locator('form#judgement input[name="preference"][value="3"]')
    expect(b_much_better).to_be_checked()
    expect(page.get_by_label("B much better", exact=True)).to_be_checked()

    # "f" focuses the justification; shortcut keys typed there are text, not commands.
    page.keyboard.press("f")
    justification = page.locator("#id_justification")
    expect(justification).to_be_focused()
    page.keyboard.type("s")
    expect(justification).to_have_value("s")
    _expect_view(page, "unified")
    page.keyboard.type("?1ujk")
    expect(justification).to_have_value("s?1ujk")
    expect(dialog).to_be_hidden()
    _expect_view(page, "unified")
    expect(b_much_better).to_be_checked()  # "1" did not pick "A much better"
    for _ in range(len("s?1ujk")):
        page.keyboard.press("Backspace")
    expect(justification).to_have_value("")
    page.keyboard.type(JUSTIFICATION)
    expect(justification).to_have_value(JUSTIFICATION)
    _expect_view(page, "unified")

    # Ctrl+Enter submits.
    page.keyboard.press("Control+Enter")
    expect(page.locator("#task-status")).to_have_attribute("data-status", "SUBMITTED")
    expect(page.locator("form#judgement")).to_have_count(0)
    ready_task.refresh_from_db()
    assert ready_task.status == Task.Status.SUBMITTED
    judgement = Judgement.objects.get(turn__task=ready_task)
    assert judgement.preference == 3
    assert judgement.justification == JUSTIFICATION
    assert judgement.scores == {
        "A": dict.fromkeys(axes, a_score),
        "B": dict.fromkeys(axes, b_score),
    }
    assert judgement.warnings == []


def test_a_half_written_judgement_survives_a_reload(log_in, contractor, project, ready_task):
    page = open_workspace(log_in, contractor, ready_task)
    axes = project.axis_keys
    half = "B guards the divisor, but"
    score(page, "A", axes[0], 3).check()
    score(page, "B", axes[-1], 5).check()
    page.get_by_label("B better", exact=True).check()
    page.get_by_label("Justification").press_sequentially(half)
    expect(page.locator("#draft-status")).to_have_text("Draft saved")

    def saved() -> bool:
        draft = JudgementDraft.objects.filter(turn__task=ready_task).first()
        return draft is not None and draft.data.get("justification") == half

    wait_for(saved, timeout=15, message="the draft with the half-written justification")
    draft = JudgementDraft.objects.get(turn__task=ready_task)
    assert draft.data["preference"] == "2"
    assert draft.data[f"score_A_{axes[0]}"] == "3"
    assert draft.data[f"score_B_{axes[-1]}"] == "5"
    assert not Judgement.objects.exists()

    page.reload()
    expect(page.locator("#task-status")).to_have_attribute("data-status", "AWAITING_PREFERENCE")
    expect(page.get_by_label("Justification")).to_have_value(half)
    expect(score(page, "A", axes[0], 3)).to_be_checked()
    expect(score(page, "B", axes[-1], 5)).to_be_checked()
    expect(page.get_by_label("B better", exact=True)).to_be_checked()
    expect(page.locator('form#judgement input[type="radio"]:checked')).to_have_count(3)
    expect(page.locator("#draft-status")).to_have_text("")
    ready_task.refresh_from_db()
    assert ready_task.status == Task.Status.AWAITING_PREFERENCE


def test_a_contradictory_judgement_is_submitted_only_after_confirming_the_warning(
    log_in, contractor, project, ready_task
):
    page = open_workspace(log_in, contractor, ready_task)
    form = page.locator("form#judgement")
    for axis in project.axis_keys:
        score(page, "A", axis, 2).check()
        score(page, "B", axis, 4).check()
    form.get_by_label("A much better", exact=True).check()
    form.get_by_label("Justification").fill(JUSTIFICATION)
    form.get_by_role("button", name="Submit for review").click()

    warning = "You prefer A, but B's scores add up higher (16 vs 8)."
    warnings = page.locator("#consistency-warnings")
    expect(warnings).to_be_visible()
    expect(warnings).to_contain_text(warning)
    expect(page.locator("#task-status")).to_have_attribute("data-status", "AWAITING_PREFERENCE")
    ready_task.refresh_from_db()
    assert ready_task.status == Task.Status.AWAITING_PREFERENCE
    assert not Judgement.objects.exists()
    # What was entered is still there, to change or confirm.
    expect(form.get_by_label("A much better", exact=True)).to_be_checked()
    expect(form.get_by_label("Justification")).to_have_value(JUSTIFICATION)

    warnings.get_by_role("button", name="Submit anyway").click()
    expect(page.locator("#task-status")).to_have_attribute("data-status", "SUBMITTED")
    expect(page.locator("#consistency-warnings")).to_have_count(0)
    ready_task.refresh_from_db()
    assert ready_task.status == Task.Status.SUBMITTED
    judgement = Judgement.objects.get(turn__task=ready_task)
    assert judgement.preference == -3
    assert judgement.warnings == [warning]


def _new_file_diff(name: str, code: str) -> str:
    return f"--- a/{name}\n+++ b/{name}\n@@ -0,0 +1,1 @@\n+{code}\n"


def test_hostile_model_output_and_prompts_are_shown_as_text_and_never_run(
    log_in, contractor, ready_task
):
    explanation = "\n\n".join([SCRIPT_PAYLOAD, EXPLANATION_IMG_PAYLOAD, LINK_PAYLOAD])
    diff = _new_file_diff(SCRIPT_PAYLOAD, IMG_PAYLOAD) + _new_file_diff(IMG_PAYLOAD, SCRIPT_PAYLOAD)
    prompt = f"{SCRIPT_PAYLOAD} {IMG_PAYLOAD}"
    Candidate.objects.filter(turn__task=ready_task, slot="A").update(
        explanation=explanation, diff=diff
    )
    Turn.objects.filter(task=ready_task).update(prompt=prompt)
    Task.objects.filter(pk=ready_task.pk).update(title=f"Title {SCRIPT_PAYLOAD}{IMG_PAYLOAD}")

    page = log_in(contractor)
    alerts: list[str] = []
    page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
    page.goto(f"/tasks/{ready_task.pk}/")
    candidate = page.locator('article.candidate[data-slot="A"]')
    expect(candidate).to_be_visible()
    expect(page.locator("#task-status")).to_have_attribute("data-status", "AWAITING_PREFERENCE")

    # Explanation: the Markdown source's HTML is text; the javascript: link is no link.
    explanation_box = candidate.locator("div.explanation")
    expect(explanation_box).to_contain_text(SCRIPT_PAYLOAD)
    expect(explanation_box).to_contain_text(EXPLANATION_IMG_PAYLOAD)
    expect(explanation_box).to_contain_text("javascript:window.__pwned=1")
    links = explanation_box.locator("a")
    for index in range(links.count()):
        href = (links.nth(index).get_attribute("href") or "").strip().lower()
        assert not href.startswith(("javascript:", "vbscript:", "data:")), href
    js_link = explanation_box.get_by_role("link", name="x", exact=True)
    if js_link.count():
        js_link.first.click()
        page.wait_for_timeout(300)

    # Diff: both file names and both lines of code, in both views.
    paths = candidate.locator(".diff-file .diff-path")
    expect(paths).to_have_count(2)
    expect(paths.nth(0)).to_have_text(SCRIPT_PAYLOAD)
    expect(paths.nth(1)).to_have_text(IMG_PAYLOAD)
    file_links = candidate.locator("nav.diff-files a")
    expect(file_links.nth(0)).to_have_text(SCRIPT_PAYLOAD)
    expect(file_links.nth(1)).to_have_text(IMG_PAYLOAD)
    unified_code = candidate.locator("table.diff-unified tr.d-add td.d-code")
    expect(unified_code).to_have_count(2)
    expect(unified_code.nth(0)).to_have_text(IMG_PAYLOAD)
    expect(unified_code.nth(1)).to_have_text(SCRIPT_PAYLOAD)
    page.keyboard.press("s")
    _expect_view(page, "split")
    split_code = candidate.locator("table.diff-split td.d-code.d-add")
    expect(split_code.nth(0)).to_have_text(IMG_PAYLOAD)
    expect(split_code.nth(1)).to_have_text(SCRIPT_PAYLOAD)

    # Prompt and title.
    expect(page.locator("section.card", has_text="Prompt (turn 1")).to_contain_text(prompt)
    expect(page.locator("h1")).to_contain_text(f"{SCRIPT_PAYLOAD}{IMG_PAYLOAD}")

    # Nothing became markup, nothing ran.
    # The only script element is the page's own JSON data for line comments (never run).
    scripts = page.locator(".workspace script")
    assert scripts.evaluate_all("els => els.map((e) => [e.id, e.type])") == [
        ["line-comments-data", "application/json"]
    ]
    assert page.locator(".workspace img").count() == 0
    assert page.locator('.workspace [onerror], .workspace a[href^="javascript:"]').count() == 0
    page.wait_for_timeout(300)  # give any injected onerror handler time to fire
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert alerts == []


def _png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", header[16:24])


def test_screenshots_of_the_workspace_in_unified_split_and_narrow_views(
    log_in, contractor, ready_task
):
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    shots = {
        name: ARTIFACTS_DIR / f"workspace-{name}.png" for name in ("unified", "split", "narrow")
    }
    for path in shots.values():
        path.unlink(missing_ok=True)
    page = open_workspace(log_in, contractor, ready_task)

    _expect_view(page, "unified")
    page.screenshot(path=str(shots["unified"]), full_page=True)

    page.get_by_role("button", name="Split").click()
    _expect_view(page, "split")
    page.screenshot(path=str(shots["split"]), full_page=True)

    page.set_viewport_size({"width": 420, "height": 900})
    page.get_by_role("button", name="Unified").click()
    _expect_view(page, "unified")
    # On a phone the judgement is a folded sheet at the bottom until it is opened.
    expect(page.locator("form#judgement")).to_be_hidden()
    page.locator("[data-toggle-panel]").click()
    expect(page.locator("form#judgement")).to_be_visible()
    page.screenshot(path=str(shots["narrow"]), full_page=True)

    for name, path in shots.items():
        assert path.is_file(), path
        assert path.stat().st_size > 20_000, (name, path.stat().st_size)
    unified_width, unified_height = _png_size(shots["unified"])
    split_width, _ = _png_size(shots["split"])
    narrow_width, narrow_height = _png_size(shots["narrow"])
    assert unified_width == split_width == 1280
    assert unified_height > 720
    # Taken at 420 px (the page's own width, if wider, is checked in the test below).
    assert 420 <= narrow_width < unified_width, narrow_width
    assert narrow_height > unified_height


OVERFLOWING_ELEMENTS_JS = """() => {
  const width = document.documentElement.clientWidth;
  const scrolled = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      const x = getComputedStyle(p).overflowX;
      if ((x === "auto" || x === "scroll" || x === "hidden") && p.clientWidth <= width) return true;
    }
    return false;
  };
  return Array.from(document.querySelectorAll("body *"))
    .filter((el) => el.getBoundingClientRect().right > width + 1 && !scrolled(el))
    .map((el) => `${el.tagName.toLowerCase()}.${el.className}`)
    .slice(0, 12);
}"""


def test_the_workspace_fits_a_narrow_screen_without_scrolling_sideways(
    log_in, contractor, ready_task
):
    page = log_in(contractor)
    page.set_viewport_size({"width": 420, "height": 900})
    page.goto(f"/tasks/{ready_task.pk}/")
    expect(page.locator("article.candidate > div.diff")).to_have_count(2)
    # The judgement is a sheet folded at the bottom; open, it must fit the width too.
    page.locator("[data-toggle-panel]").click()
    expect(page.locator("form#judgement")).to_be_visible()
    for view in ("unified", "split"):
        page.keyboard.press(view[0])
        _expect_view(page, view)
        widths = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        # Long code lines scroll inside their own diff box, never the whole page.
        assert widths[0] <= widths[1], (view, widths, page.evaluate(OVERFLOWING_ELEMENTS_JS))


def test_a_large_file_loads_when_it_is_opened(log_in, contractor, ready_task, monkeypatch):
    import uuid

    from tasks import diffview

    monkeypatch.setattr(diffview, "LARGE_FILE_LINES", 2)
    marker = f"m{uuid.uuid4().hex}"
    big = f"--- a/big.py\n+++ b/big.py\n@@ -1 +1,4 @@\n x = 1\n+{marker} = 1\n+b = 2\n+c = 3\n"
    Candidate.objects.filter(turn__task=ready_task).update(diff=big)
    page = open_workspace(log_in, contractor, ready_task)
    first = page.locator("details.diff-file").first
    expect(first).not_to_have_attribute("open", "")
    assert page.locator(f"text={marker}").count() == 0
    first.locator("summary").click()
    expect(first.locator(".diff-unified").get_by_text(marker)).to_be_visible()
