"""Opening Notifications reads them: the badge is gone on the next page, while the page that
was opened still shows which ones were new."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from reviews.models import Notification
from reviews.notification_services import notifications_open, notify
from tests.reviews.test_notifications import badge

NEW = "<strong>new</strong>"


@pytest.fixture
def two_unread(contractor):
    return [notify(user=contractor, message=f"Task #{n} was bounced.") for n in (1, 2)]


def _unread_rows(html: str) -> int:
    return len(re.findall(r'<li class="unread">', html))


def test_opening_the_page_marks_what_it_shows_read_and_highlights_it_once(
    client, contractor, two_unread
):
    client.force_login(contractor)
    assert badge(client) == 2

    first = client.get(reverse("reviews:notifications")).content.decode()
    # The view that was opened still tells the new ones apart...
    assert first.count(NEW) == 2
    assert _unread_rows(first) == 2
    # ...but they are read now: the next page has no badge, and nothing is new on a second look.
    assert not Notification.objects.filter(user=contractor, read_at__isnull=True).exists()
    assert badge(client) is None
    second = client.get(reverse("reviews:notifications")).content.decode()
    assert NEW not in second
    assert _unread_rows(second) == 0
    assert "Task #1 was bounced." in second and "Task #2 was bounced." in second


def test_only_the_ones_the_page_showed_are_read(client, contractor, two_unread):
    read_before = notify(user=contractor, message="An old one, already read.")
    Notification.objects.filter(pk=read_before.pk).update(read_at=read_before.created_at)
    client.force_login(contractor)

    page = client.get(reverse("reviews:notifications")).content.decode()
    assert page.count(NEW) == 2  # the one read earlier is not highlighted again
    assert read_before.message in page


def test_an_unread_one_beyond_the_page_keeps_its_badge(client, contractor, two_unread):
    shown = notifications_open(user=contractor, limit=1)
    assert [item.is_new for item in shown] == [True]
    still_unread = Notification.objects.filter(user=contractor, read_at__isnull=True)
    # The newest was shown (and read); the older one was never on the page, so it stays new.
    assert list(still_unread) == [two_unread[0]]


def test_another_persons_opening_reads_none_of_yours(
    client, contractor, other_contractor, two_unread
):
    client.force_login(other_contractor)
    assert client.get(reverse("reviews:notifications")).status_code == 200
    assert Notification.objects.filter(user=contractor, read_at__isnull=True).count() == 2
