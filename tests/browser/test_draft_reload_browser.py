"""What the contractor types survives a reload that comes before the autosave's pause is over,
and a submit racing an autosave ends without an error.

The autosave waits for a pause in typing (600 ms); these tests never wait for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.core.signals import request_started
from django.db import connection
from playwright.sync_api import Page, expect

from tasks.models import JudgementDraft, Task
from tests.browser.workspace_steps import open_workspace, score
from tests.conftest import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HALF = "B guards the divisor, but A"


def _leave(page: Page) -> None:
    """Leave the workspace and let the saves it sends on leaving finish, so none reaches the
    server while the test database is flushed at teardown (a deadlock)."""
    page.goto("/tasks/")
    quiet_since = time.monotonic()
    deadline = quiet_since + 10
    while time.monotonic() - quiet_since < 0.5:
        assert time.monotonic() < deadline, "the server kept handling requests"
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state <> 'idle'"
            )
            if cursor.fetchone()[0]:
                quiet_since = time.monotonic()
        time.sleep(0.05)


@pytest.fixture
def posts_received() -> Iterator[list[str]]:
    """The paths of the POSTs the live server receives, in the order it receives them.

    Seen by the server, because a save sent as a page is left belongs to no page any more
    and the browser's tooling no longer reports it.
    """
    paths: list[str] = []

    def record(sender, environ, **kwargs) -> None:
        if environ.get("REQUEST_METHOD") == "POST":
            paths.append(environ.get("PATH_INFO", ""))

    request_started.connect(record)
    yield paths
    request_started.disconnect(record)


def test_text_typed_right_before_a_reload_is_still_there(log_in, contractor, project, ready_task):
    page = open_workspace(log_in, contractor, ready_task)
    axis = project.axis_keys[0]
    score(page, "A", axis, 4).check()
    page.get_by_label("Justification").press_sequentially(HALF)
    # No wait for "Draft saved": the reload comes while the autosave still waits for a pause.
    page.reload()

    expect(page.locator("#task-status")).to_have_attribute("data-status", "AWAITING_PREFERENCE")
    expect(page.get_by_label("Justification")).to_have_value(HALF)
    expect(score(page, "A", axis, 4)).to_be_checked()

    def saved() -> bool:
        draft = JudgementDraft.objects.filter(turn__task=ready_task).first()
        return draft is not None and draft.data.get("justification") == HALF

    # The server has the draft too, so another tab (no copy of this tab's) shows it.
    wait_for(saved, timeout=10, message="the draft on the server")
    fresh = page.context.new_page()
    fresh.goto(f"/tasks/{ready_task.pk}/")
    expect(fresh.get_by_label("Justification")).to_have_value(HALF)
    expect(score(fresh, "A", axis, 4)).to_be_checked()
    draft = JudgementDraft.objects.get(turn__task=ready_task)
    assert draft.data["justification"] == HALF and draft.data[f"score_A_{axis}"] == "4"
    _leave(fresh)
    _leave(page)


def test_leaving_the_page_right_after_typing_keeps_the_text(
    log_in, contractor, ready_task, live_server
):
    page = open_workspace(log_in, contractor, ready_task)
    page.get_by_label("Justification").press_sequentially(HALF)
    # Going elsewhere at once (a link, the address bar) is the same loss as a reload.
    page.goto("/tasks/")

    def saved() -> bool:
        draft = JudgementDraft.objects.filter(turn__task=ready_task).first()
        return draft is not None and draft.data.get("justification") == HALF

    wait_for(saved, timeout=10, message="the draft saved as the page was left")
    _leave(page)


def test_submitting_right_after_typing_sends_no_draft_save_after_it(
    log_in, contractor, project, ready_task, posts_received
):
    page = open_workspace(log_in, contractor, ready_task)
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    for axis in project.axis_keys:
        score(page, "A", axis, 4).check()
        score(page, "B", axis, 2).check()
    page.get_by_label("A better", exact=True).check()
    # The keystroke starts an autosave countdown and the submit comes at once; leaving the
    # page would send what is unsaved, but the submit already carries it.
    page.get_by_label("Justification").press_sequentially("A guards the zero divisor; B not.")
    page.keyboard.press("Control+Enter")  # the workspace's submit shortcut
    expect(page.locator("#task-status")).to_have_attribute("data-status", "SUBMITTED")
    page.wait_for_timeout(1500)  # past the autosave pause: a late save would have been sent
    _leave(page)

    submit_url, draft_url = f"/tasks/{ready_task.pk}/submit/", f"/tasks/{ready_task.pk}/draft/"
    assert posts_received.count(submit_url) == 1
    after_submit = posts_received[posts_received.index(submit_url) :]
    assert draft_url not in after_submit, posts_received
    assert console_errors == []
    ready_task.refresh_from_db()
    assert ready_task.status == Task.Status.SUBMITTED
