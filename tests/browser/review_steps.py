"""Steps a reviewer takes in the browser, shared by the review-round tests."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tasks.models import Task


def nav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()


def decide(page: Page, task: Task, *, decision: str, feedback: str = "") -> None:
    """Record a decision on the claimed task; the reviewer lands on the queue without it."""
    form = page.locator("form#review-form")
    form.get_by_label(decision, exact=True).check()
    if feedback:
        form.get_by_label("General feedback").fill(feedback)
    form.get_by_role("button", name="Record decision").click()
    verb = {"Accept": "accepted", "Bounce": "bounced"}[decision]
    expect(page.get_by_role("status")).to_contain_text(f"Task #{task.pk} {verb}.")
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    expect(page.locator(f'#queue tr[data-task="{task.pk}"]')).to_have_count(0)
