"""Steps shared by the workspace's browser tests: opening a task, scoring (the `ready_task`
fixture is in tests/browser/conftest.py)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tasks.models import Task


def open_workspace(log_in, contractor, task: Task) -> Page:
    page = log_in(contractor)
    page.goto(f"/tasks/{task.pk}/")
    expect(page.locator("#task-status")).to_have_attribute("data-status", "AWAITING_PREFERENCE")
    expect(page.locator("article.candidate > div.diff")).to_have_count(2)
    return page


def score(page: Page, slot: str, axis: str, value: int):
    return page.locator(
        f'form#judgement input[type="radio"][name="score_{slot}_{axis}"][value="{value}"]'
    )
