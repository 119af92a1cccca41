"""Shared by the reapers of every app whose rows wait in QUEUED for a job."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet


def resend_stale_queued(queued: QuerySet, *, now: datetime, send: Callable[[int], object]) -> int:
    """Send again the job of every row of `queued` untouched for MARLIN_QUEUED_STALE_SECONDS.

    Such a row lost its message (a broker outage after commit). Its updated_at moves on
    first, so the next sweep does not send it again a minute later.
    """
    stale = queued.filter(
        updated_at__lt=now - timedelta(seconds=settings.MARLIN_QUEUED_STALE_SECONDS)
    ).values_list("pk", flat=True)
    count = 0
    for pk in stale:
        queued.model.objects.filter(pk=pk).update(updated_at=now)
        send(pk)
        count += 1
    return count
