"""The top bar stays one line at 800 px for someone with every role, and at 420 px nothing on
the page is wider than the screen."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import Page, expect

from marlin import roles
from reviews.notification_services import notify

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ONE_LINE_PX = 60  # the bar is ~40 px tall on one line; a second line of links adds ~25 px


@pytest.fixture
def every_role(admin_user):
    """An admin who also works on tasks and reviews them: the most links the bar can have,
    plus an unread badge."""
    admin_user.groups.add(*Group.objects.filter(name__in=[roles.CONTRACTOR, roles.REVIEWER]))
    for n in range(12):
        notify(user=admin_user, message=f"Task #{n} was accepted.")
    return admin_user


def _bar_height(page: Page) -> float:
    return page.locator("header.topbar").bounding_box()["height"]


def _widest(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


@pytest.mark.parametrize("path", ["/tasks/", "/reviews/", "/reviews/export/"])
def test_at_800_px_the_bar_is_one_line_with_every_link_reachable(log_in, every_role, path):
    page = log_in(every_role)
    page.set_viewport_size({"width": 800, "height": 700})
    page.goto(path)
    expect(page.locator("#notifications-link")).to_be_attached()
    assert _bar_height(page) < ONE_LINE_PX
    assert _widest(page) <= 800
    # Links beyond the bar's width are still there to scroll to, never cut off for good.
    admin = page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin")
    admin.scroll_into_view_if_needed()
    expect(admin).to_be_in_viewport()
    expect(page.get_by_role("button", name="Log out")).to_be_in_viewport()


@pytest.mark.parametrize("path", ["/tasks/", "/reviews/notifications/"])
def test_at_420_px_nothing_is_wider_than_the_screen(log_in, every_role, path):
    page = log_in(every_role)
    page.set_viewport_size({"width": 420, "height": 800})
    page.goto(path)
    assert _widest(page) <= 420
    assert _bar_height(page) < ONE_LINE_PX
    logout = page.get_by_role("button", name="Log out")
    expect(logout).to_be_in_viewport()
    notifications = page.locator("#notifications-link")
    notifications.scroll_into_view_if_needed()
    expect(notifications).to_be_in_viewport()
