"""Jobs the broker lost (a Redis restarted without its data) are sent again within a minute,
not after MARLIN_QUEUED_STALE_SECONDS (issue 14: the fault benchmark's Redis outage)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from marlin import health
from marlin.celery import app as celery_app
from marlin.reaping import resend_stale_queued
from repos.models import Repository
from tests.factories import RepositoryFactory


def _queue_depth() -> int:
    depth = health.queued_job_count(settings.CELERY_TASK_DEFAULT_QUEUE)
    assert depth is not None, "the broker could not be asked"
    return depth


@pytest.fixture
def empty_queue():
    def purge() -> None:
        with celery_app.connection_for_write() as conn:
            conn.default_channel.queue_purge(settings.CELERY_TASK_DEFAULT_QUEUE)

    purge()
    health.forget_broker_state()
    yield
    purge()


def _queued_since(seconds: int) -> Repository:
    repository = RepositoryFactory(clone_status=Repository.CloneStatus.QUEUED)
    since = timezone.now() - timedelta(seconds=seconds)
    Repository.objects.filter(pk=repository.pk).update(updated_at=since)
    return repository


def _send(pk: int) -> None:
    # A real message on this run's queue; no worker consumes it here.
    celery_app.send_task("repos.jobs.repository_clone_run", args=[pk])


def test_a_row_whose_message_the_broker_lost_is_sent_after_the_short_grace(db, empty_queue):
    lost = _queued_since(settings.MARLIN_QUEUED_LOST_SECONDS + 15)
    assert settings.MARLIN_QUEUED_LOST_SECONDS + 15 < settings.MARLIN_QUEUED_STALE_SECONDS
    assert _queue_depth() == 0

    queued = Repository.objects.filter(clone_status=Repository.CloneStatus.QUEUED)
    assert resend_stale_queued(queued, now=timezone.now(), send=_send) == 1
    assert _queue_depth() == 1
    # Sent once: its updated_at moved on, so the next sweep leaves it alone.
    assert resend_stale_queued(queued, now=timezone.now(), send=_send) == 0
    lost.refresh_from_db()
    assert lost.updated_at > timezone.now() - timedelta(seconds=5)


def test_a_row_waiting_behind_other_messages_is_not_sent_twice(db, empty_queue):
    _send(0)  # another job still waiting: the broker has not lost its queue
    _queued_since(settings.MARLIN_QUEUED_LOST_SECONDS + 15)
    queued = Repository.objects.filter(clone_status=Repository.CloneStatus.QUEUED)
    assert resend_stale_queued(queued, now=timezone.now(), send=_send) == 0
    assert _queue_depth() == 1


def test_past_the_long_grace_a_row_is_sent_whatever_the_queue_holds(db, empty_queue):
    _send(0)
    _queued_since(settings.MARLIN_QUEUED_STALE_SECONDS + 15)
    queued = Repository.objects.filter(clone_status=Repository.CloneStatus.QUEUED)
    assert resend_stale_queued(queued, now=timezone.now(), send=_send) == 1
    assert _queue_depth() == 2
