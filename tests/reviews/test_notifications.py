"""Notifications of review decisions: in the app (badge, list, API) and optionally by e-mail."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse

from marlin.exceptions import ApplicationError
from reviews.claim_services import review_claim
from reviews.models import Notification, Review
from reviews.services import review_decide
from tasks import services as task_services
from tasks.models import Task
from tests.tasks.helpers import create_task, decide, generate_all, submit

BADGE = re.compile(r'<span[^>]*\bid="unread-count"[^>]*>\s*(\d+)\s*</span>')


@pytest.fixture
def submitted_task(ready_repository, project, contractor):
    return submit(
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
    )


def badge(client) -> int | None:
    """The unread count the navigation shows on an ordinary page, or None without a badge."""
    response = client.get(reverse("tasks:list"))
    assert response.status_code == 200
    html = response.content.decode()
    match = BADGE.search(html)
    if match is None:
        assert 'id="unread-count"' not in html
        return None
    return int(match.group(1))


def bounce_then_accept(task: Task, *, reviewer, contractor) -> Task:
    decide(task, reviewer=reviewer, decision="BOUNCE", feedback="Scores contradict the text.")
    task = submit(task_services.task_revise(task=task, by=contractor))
    decide(task, reviewer=reviewer, decision="ACCEPT")
    return task


def test_a_bounce_then_an_accept_each_notify_the_contractor_once(
    submitted_task, contractor, reviewer
):
    decide(submitted_task, reviewer=reviewer, decision="BOUNCE", feedback="Scores contradict.")

    bounce = Notification.objects.get()
    assert bounce.user == contractor
    assert bounce.task_id == submitted_task.pk
    assert bounce.read_at is None
    assert "bounced" in bounce.message
    assert f"#{submitted_task.pk}" in bounce.message

    task = submit(task_services.task_revise(task=submitted_task, by=contractor))
    decide(task, reviewer=reviewer, decision="ACCEPT")

    assert Notification.objects.count() == 2
    accept = Notification.objects.exclude(pk=bounce.pk).get()
    assert (accept.user, accept.task_id, accept.read_at) == (contractor, task.pk, None)
    assert "accepted" in accept.message
    assert not Notification.objects.filter(user=reviewer).exists()


def test_a_bounce_of_the_last_round_notifies_a_rejection(
    ready_repository, project, contractor, reviewer
):
    project.max_rounds = 1
    project.save()
    task = submit(
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
    )
    decide(task, reviewer=reviewer, decision="BOUNCE", feedback="Not salvageable.")
    note = Notification.objects.get(user=contractor)
    assert "rejected after round 1" in note.message


def test_the_badge_counts_unread_and_marking_read_clears_it(
    client, submitted_task, contractor, reviewer
):
    client.force_login(contractor)
    assert badge(client) is None

    bounce_then_accept(submitted_task, reviewer=reviewer, contractor=contractor)
    assert badge(client) == 2

    page = client.get(reverse("reviews:notifications")).content.decode()
    assert page.count("<strong>new</strong>") == 2
    # Opening the page read what it shows; the button is for unread ones beyond the page, so
    # mark them unread again to exercise the POST.
    assert 'id="mark-read"' not in page
    Notification.objects.filter(user=contractor).update(read_at=None)

    response = client.post(reverse("reviews:notifications_read"))
    assert response.status_code == 302
    assert response["Location"] == reverse("reviews:notifications")
    assert not Notification.objects.filter(user=contractor, read_at__isnull=True).exists()
    assert Notification.objects.filter(user=contractor, read_at__isnull=False).count() == 2
    assert badge(client) is None
    page = client.get(reverse("reviews:notifications")).content.decode()
    assert "<strong>new</strong>" not in page
    assert 'id="mark-read"' not in page


def test_marking_read_needs_a_post(client, submitted_task, contractor, reviewer):
    decide(submitted_task, reviewer=reviewer, decision="BOUNCE", feedback="Try again.")
    client.force_login(contractor)
    assert client.get(reverse("reviews:notifications_read")).status_code == 405
    assert badge(client) == 1


def test_another_user_never_sees_or_clears_them(
    client, submitted_task, contractor, other_contractor, reviewer
):
    bounce_then_accept(submitted_task, reviewer=reviewer, contractor=contractor)
    messages = list(Notification.objects.values_list("message", flat=True))
    assert len(messages) == 2

    client.force_login(other_contractor)
    assert badge(client) is None
    page = client.get(reverse("reviews:notifications")).content.decode()
    assert "No notifications." in page
    for message in messages:
        assert message not in page
    api = client.get(reverse("api-notifications"))
    assert api.status_code == 200
    assert api.json()["count"] == 0
    assert api.json()["results"] == []
    assert client.post(reverse("api-notifications-read")).json() == {"marked_read": 0}
    client.post(reverse("reviews:notifications_read"))
    assert Notification.objects.filter(user=contractor, read_at__isnull=True).count() == 2

    client.force_login(contractor)
    api = client.get(reverse("api-notifications")).json()
    assert api["count"] == 2
    assert {item["message"] for item in api["results"]} == set(messages)
    assert {item["task"] for item in api["results"]} == {submitted_task.pk}
    assert all(item["read_at"] is None for item in api["results"])
    assert client.post(reverse("api-notifications-read")).json() == {"marked_read": 2}
    assert badge(client) is None


def test_anonymous_visitors_get_no_notifications(db, client):
    response = client.get(reverse("reviews:notifications"))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]
    assert client.get(reverse("api-notifications")).status_code in (401, 403)


# E-mail -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decision", "feedback", "word"),
    [("ACCEPT", "", "accepted"), ("BOUNCE", "Scores contradict.", "bounced")],
)
def test_with_email_on_a_decision_mails_the_contractor_once_after_commit(
    settings,
    django_capture_on_commit_callbacks,
    submitted_task,
    contractor,
    reviewer,
    decision,
    feedback,
    word,
):
    settings.MARLIN_NOTIFY_BY_EMAIL = True
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        decide(submitted_task, reviewer=reviewer, decision=decision, feedback=feedback)
        # Still inside the transaction: nothing has left yet.
        assert mail.outbox == []
    assert len(callbacks) >= 1
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["carol@example.com"]
    assert sent.subject.startswith("Marlin: ")
    assert f"#{submitted_task.pk}" in sent.body
    assert word in sent.body
    assert Notification.objects.get(user=contractor).message == sent.body


def test_a_repeated_decision_notifies_and_mails_only_once(
    settings, django_capture_on_commit_callbacks, submitted_task, contractor, reviewer
):
    settings.MARLIN_NOTIFY_BY_EMAIL = True
    with django_capture_on_commit_callbacks(execute=True):
        first = decide(submitted_task, reviewer=reviewer, decision="ACCEPT")
    with django_capture_on_commit_callbacks(execute=True):
        # The reviewer's double click: the decision stands, nothing new is said.
        again = review_decide(
            task=submitted_task, reviewer=reviewer, decision="ACCEPT", feedback=""
        )
    assert again.pk == first.pk
    assert Notification.objects.filter(user=contractor).count() == 1
    assert len(mail.outbox) == 1


def test_with_email_off_a_decision_sends_no_mail(
    settings, django_capture_on_commit_callbacks, submitted_task, contractor, reviewer
):
    settings.MARLIN_NOTIFY_BY_EMAIL = False
    with django_capture_on_commit_callbacks(execute=True):
        decide(submitted_task, reviewer=reviewer, decision="ACCEPT")
    assert mail.outbox == []
    assert Notification.objects.filter(user=contractor).count() == 1


def test_with_email_on_a_contractor_without_an_address_gets_only_the_app_notification(
    settings, django_capture_on_commit_callbacks, submitted_task, contractor, reviewer
):
    settings.MARLIN_NOTIFY_BY_EMAIL = True
    contractor.email = ""
    contractor.save()
    with django_capture_on_commit_callbacks(execute=True):
        decide(submitted_task, reviewer=reviewer, decision="ACCEPT")
    assert mail.outbox == []
    assert Notification.objects.filter(user=contractor).count() == 1


def _bounce_without_feedback(task: Task, reviewer) -> None:
    review_claim(task=task, reviewer=reviewer)
    review_decide(task=task, reviewer=reviewer, decision="BOUNCE", feedback="   ")


def _decide_without_a_claim(task: Task, reviewer) -> None:
    review_decide(task=task, reviewer=reviewer, decision="ACCEPT", feedback="")


@pytest.mark.parametrize(
    ("attempt", "message"),
    [
        (_bounce_without_feedback, "needs feedback"),
        (_decide_without_a_claim, "Claim this task before deciding"),
    ],
)
def test_a_failed_decision_sends_nothing_and_stores_no_notification(
    settings,
    django_capture_on_commit_callbacks,
    submitted_task,
    contractor,
    reviewer,
    attempt,
    message,
):
    settings.MARLIN_NOTIFY_BY_EMAIL = True
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(ApplicationError, match=message),
    ):
        attempt(submitted_task, reviewer)
    assert mail.outbox == []
    assert not Notification.objects.exists()
    assert not Review.objects.exists()
    submitted_task.refresh_from_db()
    assert submitted_task.status == Task.Status.SUBMITTED


def test_a_title_typed_with_a_newline_is_one_line_and_mails_safely(
    settings, django_capture_on_commit_callbacks, client, ready_repository, project, contractor,
    reviewer,
):  # fmt: skip
    client.force_login(contractor)
    client.post(
        reverse("tasks:create"),
        {
            "project": project.pk,
            "repository": ready_repository.pk,
            "ref": "",
            "title": "Fix\r\nBcc: x@evil.example",
            "kind": "bug_fix",
            "prompt": "Make div safe.",
        },
    )
    task = Task.objects.get()
    assert task.title == "Fix Bcc: x@evil.example"
    submit(generate_all(task))
    settings.MARLIN_NOTIFY_BY_EMAIL = True
    with django_capture_on_commit_callbacks(execute=True):
        decide(task, reviewer=reviewer)
    [sent] = mail.outbox
    assert "\n" not in sent.subject and "\r" not in sent.subject
    assert sent.to == [contractor.email] and sent.bcc == []


def test_a_mail_server_refusing_a_message_never_undoes_the_decision(
    settings, django_capture_on_commit_callbacks, submitted_task, reviewer, monkeypatch
):
    from django.core.mail import BadHeaderError

    from reviews import notification_services

    def refuse(*args, **kwargs):
        raise BadHeaderError("refused")

    monkeypatch.setattr(notification_services, "send_mail", refuse)
    settings.MARLIN_NOTIFY_BY_EMAIL = True
    with django_capture_on_commit_callbacks(execute=True):
        decide(submitted_task, reviewer=reviewer)
    submitted_task.refresh_from_db()
    assert submitted_task.status == Task.Status.ACCEPTED
    assert Notification.objects.filter(task=submitted_task).count() == 1
