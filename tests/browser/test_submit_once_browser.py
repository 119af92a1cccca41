"""A double click of Submit posts the judgement once: one "Submitted for review" message and no
failed request (4xx/5xx) anywhere on the way, autosaves included."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.core.signals import request_started
from django.db import connection, transaction
from playwright.sync_api import Page, Response, expect

from tasks.models import Submission, Task
from tests.browser.workspace_steps import open_workspace, score

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _wait_until_the_server_is_quiet(seconds: float = 0.5) -> None:
    """Let requests still in flight (a late submit or autosave) finish before the test checks
    what happened, and before the test database is flushed at teardown."""
    quiet_since = time.monotonic()
    deadline = quiet_since + 10
    while time.monotonic() - quiet_since < seconds:
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
    """The paths of the POSTs the live server receives: the page's own tooling does not see a
    request the browser dropped when it navigated on."""
    paths: list[str] = []

    def record(sender, environ, **kwargs) -> None:
        if environ.get("REQUEST_METHOD") == "POST":
            paths.append(environ.get("PATH_INFO", ""))

    request_started.connect(record)
    yield paths
    request_started.disconnect(record)


def _fill_judgement(page: Page, axes: list[str]) -> None:
    for axis in axes:
        score(page, "A", axis, 4).check()
        score(page, "B", axis, 2).check()
    page.get_by_label("A better", exact=True).check()
    # Typing starts an autosave countdown that the double click races.
    page.get_by_label("Justification").fill("A guards the zero divisor; B crashes on it.")


def test_a_double_click_of_submit_submits_once_without_a_failed_request(
    log_in, contractor, project, ready_task
):
    page = open_workspace(log_in, contractor, ready_task)
    failed: list[str] = []

    def record(response: Response) -> None:
        if response.status >= 400:
            failed.append(f"{response.status} {response.request.method} {response.url}")

    page.on("response", record)
    _fill_judgement(page, project.axis_keys)
    page.get_by_role("button", name="Submit for review").dblclick()

    expect(page.locator("#task-status")).to_have_attribute("data-status", "SUBMITTED")
    page.wait_for_timeout(1000)  # past the autosave pause: a late save would have been sent
    _wait_until_the_server_is_quiet()
    page.reload()  # a message left over in the session for the next page would show here
    expect(page.locator("#task-status")).to_have_attribute("data-status", "SUBMITTED")
    _wait_until_the_server_is_quiet()

    assert failed == []
    assert Submission.objects.filter(task=ready_task).count() == 1
    ready_task.refresh_from_db()
    assert ready_task.status == Task.Status.SUBMITTED


def test_a_slow_double_click_while_the_server_answers_sends_one_submit(
    log_in, contractor, project, ready_task, posts_received
):
    page = open_workspace(log_in, contractor, ready_task)
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    _fill_judgement(page, project.axis_keys)
    button = page.get_by_role("button", name="Submit for review")
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    # The task's row is held, so the first submit waits in the server and the page stays
    # there for the second click (a fast double click is merged by the browser itself).
    with transaction.atomic():
        Task.objects.select_for_update().get(pk=ready_task.pk)
        page.mouse.click(x, y)
        page.wait_for_timeout(250)
        page.mouse.click(x, y)
        page.wait_for_timeout(500)

    expect(page.locator("#task-status")).to_have_attribute("data-status", "SUBMITTED")
    _wait_until_the_server_is_quiet()
    expect(page.locator(".messages li", has_text="Submitted for review")).to_have_count(1)
    # The page sent one submit: the second click found the form already submitting.
    assert posts_received.count(f"/tasks/{ready_task.pk}/submit/") == 1
    assert failed == []
    assert Submission.objects.filter(task=ready_task).count() == 1


def test_a_form_the_browser_refuses_keeps_its_submit_buttons(
    log_in, contractor, project, ready_task
):
    page = open_workspace(log_in, contractor, ready_task)
    submit = page.get_by_role("button", name="Submit for review")
    # Nothing filled in: the browser's own validation blocks the submit...
    submit.click()
    page.wait_for_timeout(200)
    expect(page.locator("#task-status")).to_have_attribute("data-status", "AWAITING_PREFERENCE")
    # ...and the button still works once the judgement is complete.
    expect(submit).to_be_enabled()
    _fill_judgement(page, project.axis_keys)
    submit.click()
    expect(page.locator("#task-status")).to_have_attribute("data-status", "SUBMITTED")
    _wait_until_the_server_is_quiet()
