"""The diff tools in a real browser: "show more lines" and the hide-whitespace toggle."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tasks.models import Candidate
from tests.browser.workspace_steps import open_workspace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# calc/ops.py at the pinned commit has 6 lines: lines 2-4 sit between the two hunks.
TWO_HUNKS = (
    "--- a/calc/ops.py\n+++ b/calc/ops.py\n"
    "@@ -1 +1,2 @@\n def add(a, b):\n+    # adds\n"
    "@@ -5,2 +6,2 @@\n def div(a, b):\n-    return a / b\n+    return a // b\n"
)
WHITESPACE_ONLY = (
    "--- a/calc/ops.py\n+++ b/calc/ops.py\n@@ -1,2 +1,2 @@\n"
    " def add(a, b):\n-    return a + b\n+    return  a + b\n"
)


def _set_diffs(task) -> dict[str, Candidate]:
    candidates = {c.slot: c for c in Candidate.objects.filter(turn__task=task)}
    for slot, diff in (("A", TWO_HUNKS), ("B", WHITESPACE_ONLY)):
        Candidate.objects.filter(pk=candidates[slot].pk).update(diff=diff, applies_cleanly=True)
    return candidates


def test_show_more_lines_inserts_the_pinned_commits_lines(log_in, contractor, ready_task):
    a = _set_diffs(ready_task)["A"]
    page = open_workspace(log_in, contractor, ready_task)
    section = page.locator(f'.diff-view[data-candidate="{a.pk}"]')
    anchor = f"c{a.pk}-f1"
    expect(section.locator(f'[id="{anchor}-L3"]')).to_have_count(0)
    button = section.locator("table:visible .d-expand-button").first
    expect(button).to_have_text("↕ 3")  # a small gap is shown whole
    button.click()
    # The one table sent (unified) gets the rows, numbered past hunk 1.
    expect(section.locator("tr.d-expanded")).to_have_count(3)
    expect(section.locator(f'[id="{anchor}-L3"]')).to_have_count(1)
    expect(section.locator(f'[id="{anchor}-R4"]')).to_have_count(1)
    expect(section.locator(f'[id="{anchor}-sL3"]')).to_have_count(0)  # no split table
    expect(section.locator("table:visible tr.d-expanded").first).to_contain_text("return a + b")
    # The gap is closed: its button is gone; only the tail's "more below" remains.
    expect(section.locator("table:visible .d-expand-button")).to_have_count(1)


def test_the_whitespace_toggle_hides_a_whitespace_only_change(log_in, contractor, ready_task):
    b = _set_diffs(ready_task)["B"]
    page = open_workspace(log_in, contractor, ready_task)
    section = page.locator(f'.diff-view[data-candidate="{b.pk}"]')
    expect(section.locator("tr.d-del")).to_have_count(1)
    toggle = page.locator("[data-toggle-whitespace]")
    expect(toggle).to_have_count(1)
    toggle.click()
    hidden = page.locator(f'.diff-view[data-candidate="{b.pk}"][data-whitespace="hide"]')
    expect(hidden).to_have_count(1)
    expect(hidden.locator("tr.d-del")).to_have_count(0)
    expect(hidden.locator("tr.d-add")).to_have_count(0)
    expect(toggle).to_have_attribute("aria-pressed", "true")
    # The choice is remembered: a reload shows the diff with whitespace hidden again.
    page.reload()
    expect(
        page.locator(f'.diff-view[data-candidate="{b.pk}"][data-whitespace="hide"]')
    ).to_have_count(1)
    page.locator("[data-toggle-whitespace]").click()
    shown = page.locator(f'.diff-view[data-candidate="{b.pk}"]:not([data-whitespace])')
    expect(shown.locator("tr.d-del")).to_have_count(1)
