"""Files past the first load in a real browser: their placeholder loads the file when it is
scrolled to, a large file loads when opened, and switching layout fetches the other table."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from tasks import diff_html
from tasks.models import Candidate
from tests.browser.workspace_steps import open_workspace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _files(count: int, lines: int, marker: str) -> str:
    out = []
    for number in range(count):
        out += ["--- /dev/null", f"+++ b/pkg/mod_{number}.py", f"@@ -0,0 +1,{lines} @@"]
        out += [f"+value_{i} = '{marker}-{number}'" for i in range(lines)]
    return "\n".join(out) + "\n"


def _open_with(log_in, contractor, task, *, files: int, lines: int):
    """The workspace, candidate A's diff made of `files` added files; (page, A, marker)."""
    marker = uuid.uuid4().hex[:12]
    candidate = Candidate.objects.filter(turn__task=task, slot="A").get()
    Candidate.objects.filter(pk=candidate.pk).update(diff=_files(files, lines, marker))
    return open_workspace(log_in, contractor, task), candidate, marker


def test_a_file_not_sent_with_the_page_loads_when_scrolled_to(log_in, contractor, ready_task):
    page, candidate, marker = _open_with(log_in, contractor, ready_task, files=20, lines=60)
    section = page.locator(f'.diff-view[data-candidate="{candidate.pk}"]')
    eager = diff_html.EAGER_LINES // 60
    expect(section.locator("table.diff-unified")).to_have_count(eager)
    last = section.locator(f'details[id="c{candidate.pk}-f20"]')
    expect(last.locator(".diff-lazy")).to_have_count(1)
    expect(page.get_by_text(f"'{marker}-19'").first).to_have_count(0)
    last.scroll_into_view_if_needed()
    expect(last.locator("table.diff-unified")).to_have_count(1)
    expect(last.locator("td.d-code").first).to_contain_text(f"{marker}-19")
    expect(last.locator(".diff-lazy")).to_have_count(0)
    # Its line anchors work like the first files' (comments and links use them).
    expect(last.locator(f'[id="c{candidate.pk}-f20-R60"]')).to_have_count(1)


def test_switching_layout_fetches_the_other_table(log_in, contractor, ready_task):
    page, candidate, marker = _open_with(log_in, contractor, ready_task, files=2, lines=5)
    section = page.locator(f'.diff-view[data-candidate="{candidate.pk}"]')
    expect(section.locator("table.diff-unified")).to_have_count(2)
    expect(page.locator("table.diff-split")).to_have_count(0)  # one layout sent
    page.keyboard.press("s")
    section = page.locator(f'.diff-view[data-candidate="{candidate.pk}"][data-layout="split"]')
    expect(section.locator("table.diff-split")).to_have_count(2)
    expect(section.locator("table.diff-unified")).to_have_count(0)
    expect(section.locator("td.d-code.d-add").first).to_contain_text(f"{marker}-0")
    # Remembered: the next page is rendered split by the server.
    page.reload()
    expect(page.locator(".workspace")).to_have_attribute("data-diff-view", "split")
    expect(
        page.locator(f'.diff-view[data-candidate="{candidate.pk}"] table.diff-split')
    ).to_have_count(2)
