"""In-app notifications, the writes: sending one (by e-mail too when switched on) and marking
them read. Reads are in notification_selectors."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import BadHeaderError, send_mail
from django.db import transaction
from django.utils import timezone

from reviews.models import Notification, Review
from reviews.notification_selectors import notifications_for
from tasks.models import Task

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)


def notify(*, user: User, message: str, task: Task | None = None) -> Notification:
    """Tell `user` something in the app; by e-mail too when that is switched on.

    The mail leaves only once the transaction commits, so a rolled-back decision sends none.
    """
    notification = Notification.objects.create(user=user, task=task, message=message[:300])
    if settings.MARLIN_NOTIFY_BY_EMAIL and user.email:
        transaction.on_commit(lambda: _send_mail(user.email, message), robust=True)
    return notification


def _send_mail(address: str, message: str) -> None:
    # A subject is one line: a title may carry a newline (and would be a header injection).
    subject = " ".join(("Marlin: " + message[:120]).split())
    try:
        send_mail(subject, message, None, [address])
    except (OSError, BadHeaderError):
        # A mail server being down must not undo a decision that is already committed.
        logger.exception("notification e-mail to %s failed", address)


def notify_decision(*, task: Task, review: Review) -> None:
    if review.decision == Review.Decision.ACCEPT:
        message = f"Task #{task.pk} “{task.title}” was accepted."
    elif review.rejects_task:
        message = f"Task #{task.pk} “{task.title}” was rejected after round {review.round}."
    else:
        message = f"Task #{task.pk} “{task.title}” was bounced: see the reviewer's feedback."
    notify(user=task.contractor, task=task, message=message)


def notifications_mark_read(*, user: User) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).update(
        read_at=timezone.now()
    )


@dataclass(frozen=True)
class ShownNotification:
    notification: Notification
    is_new: bool


@transaction.atomic
def notifications_open(*, user: User, limit: int = 100) -> list[ShownNotification]:
    """The newest `limit` notifications of `user`, as the Notifications page shows them.

    Opening the page is reading them: the ones shown are marked read (only those, so an
    older unread one beyond the page keeps its badge), while each still says whether it was
    new before this view, so the page can highlight it once.
    """
    items = list(notifications_for(user=user)[:limit])
    unread = {item.pk for item in items if item.read_at is None}
    if unread:
        Notification.objects.filter(pk__in=unread, read_at__isnull=True).update(
            read_at=timezone.now()
        )
    return [ShownNotification(notification=item, is_new=item.pk in unread) for item in items]
