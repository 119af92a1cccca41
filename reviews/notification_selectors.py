"""Reads of in-app notifications: the badge's count and a user's list."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from reviews.models import Notification

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def unread_count(*, user: User) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


def notifications_for(*, user: User) -> QuerySet[Notification]:
    return Notification.objects.filter(user=user).select_related("task")
