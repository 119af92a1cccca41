"""The workspace at 1920, 1280 and 420 px: no code line is cut in any comparison mode, and
the judgement panel stays in view while the page scrolls through a 3,000-line diff.

A screenshot of every mode at every width is kept in var/test-artifacts/ (CI lists them).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from reviews.claim_services import review_claim
from tasks.models import Candidate
from tests.browser.conftest import ARTIFACTS_DIR
from tests.browser.workspace_steps import open_workspace
from tests.tasks.helpers import submit

WIDTHS = {1920: 1080, 1280: 800, 420: 860}
# One token of 200 characters: only wrapping anywhere or scrolling can show all of it.
WIDE_TOKEN = "W" * 190 + "_END_OF_IT"
FILES, LINES_PER_FILE = 3, 1_000  # 3,000 changed lines; each file under the lazy-load size


def _added_file(path: str, lines: list[str]) -> str:
    body = "".join(f"+{line}\n" for line in lines)
    return f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{len(lines)} @@\n{body}"


def _long_diff(slot: str) -> str:
    wide = _added_file("wide.py", [f'x = "{WIDE_TOKEN}{slot}"'])
    bulk = "".join(
        _added_file(
            f"pkg/module_{n}.py", [f"value_{n}_{i} = {i}  # {slot}" for i in range(LINES_PER_FILE)]
        )
        for n in range(FILES)
    )
    return wide + bulk


@pytest.fixture
def long_task(ready_task):
    for candidate in Candidate.objects.filter(turn__task=ready_task):
        Candidate.objects.filter(pk=candidate.pk).update(diff=_long_diff(candidate.slot))
    return ready_task


# Scrolls every scrollable ancestor so the wide token's last character shows, then says
# whether that character is inside the viewport and inside every box that clips it.
_LAST_CHARACTER_SHOWS = """(cell, view) => {
  const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  let last = null;
  while (walker.nextNode()) if (walker.currentNode.textContent.includes("_END_OF_IT")) last = walker.currentNode;
  const end = last.textContent.lastIndexOf("_END_OF_IT") + "_END_OF_IT".length;
  const range = document.createRange();
  range.setStart(last, end - 1); range.setEnd(last, end);
  const mark = document.createElement("span");
  range.surroundContents(mark);
  mark.scrollIntoView({ block: "center", inline: "center" });
  const r = mark.getBoundingClientRect();
  mark.replaceWith(...mark.childNodes);
  cell.normalize();  // one text node again, for the next mode's look
  if (r.width === 0 || r.left < 0 || r.right > window.innerWidth + 0.5) return "outside viewport";
  for (let el = cell; el; el = el.parentElement) {
    const style = getComputedStyle(el);
    if (style.overflowX !== "visible") {
      const box = el.getBoundingClientRect();
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5) return "clipped by " + el.className;
    }
  }
  // Split view wraps each half: the line shows whole without scrolling the file sideways.
  if (view === "split" && cell.closest(".diff-body").scrollLeft > 0) return "scrolled sideways";
  return "shown";
}"""


def _wide_cell(page: Page, slot: str, view: str):
    """The cell holding candidate `slot`'s wide line; slot "AB" is B's side of A vs B."""
    table = "table.diff-split" if view == "split" else "table.diff-unified"
    where = '[data-mode-panel="ab"]' if slot == "AB" else f'article.candidate[data-slot="{slot}"]'
    text = "_END_OF_ITB" if slot == "AB" else f"_END_OF_IT{slot}"
    return page.locator(f"{where} {table} td.d-code").filter(has_text=text).last


def _shot(page: Page, name: str) -> None:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS_DIR / f"{name}.png"))


def _panel_in_view(page: Page) -> bool:
    return page.evaluate(
        """() => {
          const box = document.getElementById("judgement-panel").getBoundingClientRect();
          return box.height > 20 && box.top >= -0.5 && box.bottom <= window.innerHeight + 0.5;
        }"""
    )


@pytest.mark.parametrize("width", list(WIDTHS))
def test_no_code_line_is_cut_in_any_mode(log_in, contractor, long_task, width):
    page = open_workspace(log_in, contractor, long_task)
    page.set_viewport_size({"width": width, "height": WIDTHS[width]})
    modes = [("side", None), ("single", "A"), ("single", "B"), ("ab", None)]
    for view in ("unified", "split"):
        page.get_by_role("button", name="Split" if view == "split" else "Unified").first.click()
        for compare, focus in modes:
            if focus:
                page.locator(f'[data-set-focus="{focus}"]').first.click()
            else:
                page.locator(f'[data-set-compare="{compare}"]').first.click()
            expect(page.locator(".workspace")).to_have_attribute("data-compare", compare)
            slots = ("AB",) if compare == "ab" else (focus,) if focus else ("A", "B")
            for slot in slots:
                cell = _wide_cell(page, slot, view)
                expect(cell).to_be_visible()
                assert cell.evaluate(_LAST_CHARACTER_SHOWS, view) == "shown", (
                    width,
                    view,
                    compare,
                    slot,
                )
            _shot(page, f"workspace-{width}px-{view}-{compare}{focus or ''}")
        # Nothing widens the page itself: long lines stay inside their file.
        assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_judgement_panel_stays_in_view_through_a_long_diff(
    log_in, contractor, long_task, width
):
    page = open_workspace(log_in, contractor, long_task)
    page.set_viewport_size({"width": width, "height": WIDTHS[width]})
    page.get_by_role("button", name="Split").first.click()
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height > 10 * WIDTHS[width], "the fixture must make a long page"
    for fraction in (0.1, 0.35, 0.6, 0.85):
        page.evaluate(f"window.scrollTo(0, {int(height * fraction)})")
        page.wait_for_timeout(50)
        assert _panel_in_view(page), (width, fraction)
    toggle = page.locator("[data-toggle-panel]")
    if width < 1100:
        # On a phone the panel is a folded sheet at the bottom; unfolding shows the form there.
        expect(toggle).to_be_visible()
        expect(toggle).to_have_attribute("aria-expanded", "false")
        toggle.click()
        expect(page.locator("form#judgement input[name=preference]").first).to_be_in_viewport()
        assert _panel_in_view(page)
    else:
        expect(toggle).to_be_hidden()
        expect(page.locator("form#judgement")).to_be_in_viewport()
    _shot(page, f"workspace-{width}px-panel-mid-diff")


def test_the_pages_use_the_full_width_of_a_wide_screen(log_in, contractor, long_task):
    page = open_workspace(log_in, contractor, long_task)
    page.set_viewport_size({"width": 1920, "height": 1080})
    # The 1400 px cap of other pages no longer applies: diffs get the room.
    assert page.locator(".workspace").bounding_box()["width"] > 1800


def test_the_review_decision_stays_in_view_through_a_long_diff(
    log_in, contractor, reviewer, long_task
):
    submit(long_task)
    review_claim(task=long_task, reviewer=reviewer)
    page = log_in(reviewer)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"/reviews/tasks/{long_task.pk}/")
    expect(page.locator("form#review-form")).to_be_visible()
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height > 10 * 800
    for fraction in (0.2, 0.5, 0.8):
        page.evaluate(f"window.scrollTo(0, {int(height * fraction)})")
        page.wait_for_timeout(50)
        assert _panel_in_view(page), fraction
        expect(page.get_by_role("button", name="Record decision")).to_be_in_viewport()
    _shot(page, "review-1280px-panel-mid-diff")
