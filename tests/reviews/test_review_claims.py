from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.db import IntegrityError
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from marlin.celery import app as celery_app
from marlin.exceptions import ApplicationError, ConflictError, PermissionDeniedError
from reviews.claim_services import claims_release_expired, review_claim, review_release
from reviews.models import ReviewClaim
from reviews.selectors import review_claim_open
from tasks.models import Task, TaskEvent
from tests.concurrency import run_racing
from tests.factories import UserFactory
from tests.tasks.helpers import create_task, generate_all, submit


@pytest.fixture
def submitted_task(ready_repository, project, contractor):
    return submit(
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
    )


@pytest.fixture
def rex(db):
    return UserFactory(username="rex", role="reviewer")


def _claim_events(task) -> list[str]:
    return list(
        TaskEvent.objects.filter(task=task)
        .exclude(kind=TaskEvent.Kind.STATUS)
        .values_list("kind", flat=True)
    )


def test_a_claim_lasts_the_projects_claim_time_and_is_logged(submitted_task, reviewer):
    submitted_task.project.claim_minutes = 45
    submitted_task.project.save()
    claim = review_claim(task=submitted_task, reviewer=reviewer)
    assert claim.round == 1
    assert timedelta(minutes=44) < claim.expires_at - timezone.now() <= timedelta(minutes=45)
    assert review_claim_open(task=submitted_task) == claim
    assert _claim_events(submitted_task) == ["claim"]
    event = TaskEvent.objects.get(task=submitted_task, kind=TaskEvent.Kind.CLAIM)
    assert (event.from_status, event.to_status, event.actor) == ("SUBMITTED", "SUBMITTED", reviewer)


def test_claiming_twice_is_harmless_and_another_reviewer_is_told(submitted_task, reviewer, rex):
    first = review_claim(task=submitted_task, reviewer=reviewer)
    assert review_claim(task=submitted_task, reviewer=reviewer) == first
    with pytest.raises(ConflictError, match="already claimed by another reviewer"):
        review_claim(task=submitted_task, reviewer=rex)
    assert ReviewClaim.objects.count() == 1
    assert _claim_events(submitted_task) == ["claim"]


def test_an_expired_claim_frees_the_task_for_another_reviewer(submitted_task, reviewer, rex):
    with time_machine.travel(timezone.now() - timedelta(hours=2)):
        review_claim(task=submitted_task, reviewer=reviewer)
    assert review_claim_open(task=submitted_task) is None
    claim = review_claim(task=submitted_task, reviewer=rex)
    assert claim.reviewer == rex
    ended = ReviewClaim.objects.get(reviewer=reviewer)
    assert ended.ending == ReviewClaim.Ending.EXPIRED
    assert _claim_events(submitted_task) == ["claim", "expire", "claim"]


def test_the_periodic_job_releases_only_lapsed_claims(
    submitted_task, reviewer, ready_repository, project, other_contractor
):
    fresh_task = submit(
        generate_all(
            create_task(contractor=other_contractor, project=project, repository=ready_repository)
        )
    )
    with time_machine.travel(timezone.now() - timedelta(hours=2)):
        review_claim(task=submitted_task, reviewer=reviewer)
    review_claim(task=fresh_task, reviewer=reviewer)
    assert claims_release_expired() == 1
    assert claims_release_expired() == 0  # a second run finds nothing
    assert ReviewClaim.objects.get(task=submitted_task).ending == ReviewClaim.Ending.EXPIRED
    assert ReviewClaim.objects.get(task=fresh_task).ended_at is None
    assert _claim_events(submitted_task) == ["claim", "expire"]


def test_the_release_job_is_registered_and_scheduled():
    name = "reviews.jobs.review_claims_release_expired_run"
    celery_app.loader.import_default_modules()  # what a worker does at start: autodiscovery
    assert name in celery_app.tasks
    assert any(entry["task"] == name for entry in settings.CELERY_BEAT_SCHEDULE.values())


def test_a_reviewer_releases_their_claim_and_only_theirs(submitted_task, reviewer, rex):
    review_claim(task=submitted_task, reviewer=reviewer)
    with pytest.raises(ConflictError, match="only they can release"):
        review_release(task=submitted_task, reviewer=rex)
    assert review_claim_open(task=submitted_task) is not None
    review_release(task=submitted_task, reviewer=reviewer)
    review_release(task=submitted_task, reviewer=reviewer)  # twice: nothing more happens
    assert review_claim_open(task=submitted_task) is None
    assert _claim_events(submitted_task) == ["claim", "release"]
    assert review_claim(task=submitted_task, reviewer=rex).reviewer == rex


def test_only_submitted_tasks_of_others_can_be_claimed(
    ready_repository, project, contractor, reviewer
):
    task = generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )
    with pytest.raises(ApplicationError, match="only submitted tasks"):
        review_claim(task=task, reviewer=reviewer)
    with pytest.raises(PermissionDeniedError):
        review_claim(task=submit(task), reviewer=contractor)
    assert not ReviewClaim.objects.exists()


@pytest.mark.postgresql_only
@pytest.mark.django_db(transaction=True)
def test_two_reviewers_claiming_at_once_exactly_one_wins(ready_repository, project, contractor):
    task = submit(
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
    )
    reviewers = [UserFactory(username=f"rev{i}", role="reviewer") for i in range(2)]

    def run(reviewer):
        return review_claim(task=Task.objects.get(pk=task.pk), reviewer=reviewer)

    outcomes = run_racing(run, *[(r,) for r in reviewers], hold=task)
    [loser] = [o for o in outcomes if isinstance(o, ConflictError)]
    assert loser.message == f"Task #{task.pk} is already claimed by another reviewer."
    # Both read "no open claim"; the unique index refused the second insert. The check
    # before the insert cannot have answered: it would raise no IntegrityError.
    assert isinstance(loser.__cause__, IntegrityError)
    assert "claim_one_open_per_task" in str(loser.__cause__)
    assert ReviewClaim.objects.filter(task=task).count() == 1
    assert TaskEvent.objects.filter(task=task, kind=TaskEvent.Kind.CLAIM).count() == 1


@pytest.mark.postgresql_only
@pytest.mark.django_db(transaction=True)
def test_two_reviewers_claiming_over_the_api_get_201_and_409(ready_repository, project, contractor):
    task = submit(
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
    )
    reviewers = [UserFactory(username=f"api{i}", role="reviewer") for i in range(2)]
    url = reverse("api-review-claim", args=[task.pk])

    def run(reviewer):
        client = APIClient()
        client.force_authenticate(reviewer)
        response = client.post(url)
        return response.status_code, response.json().get("detail", "")

    answers = run_racing(run, *[(r,) for r in reviewers], hold=task)
    assert sorted(answers) == [
        (201, ""),
        (409, f"Task #{task.pk} is already claimed by another reviewer."),
    ]
    assert ReviewClaim.objects.filter(task=task).count() == 1
    assert TaskEvent.objects.filter(task=task, kind=TaskEvent.Kind.CLAIM).count() == 1


def test_the_page_tells_the_second_reviewer_the_task_is_taken(
    client, submitted_task, reviewer, rex
):
    review_claim(task=submitted_task, reviewer=reviewer)
    client.force_login(rex)
    response = client.post(reverse("reviews:claim", args=[submitted_task.pk]), follow=True)
    assert "already claimed by another reviewer" in response.content.decode()
    detail = client.get(reverse("reviews:detail", args=[submitted_task.pk])).content.decode()
    assert "Another reviewer is reviewing this task" in detail
    assert 'id="review-form"' not in detail


def test_the_decision_form_appears_only_for_the_claim_holder(client, submitted_task, reviewer):
    client.force_login(reviewer)
    url = reverse("reviews:detail", args=[submitted_task.pk])
    assert 'id="review-form"' not in client.get(url).content.decode()
    client.post(reverse("reviews:claim", args=[submitted_task.pk]))
    page = client.get(url).content.decode()
    assert 'id="review-form"' in page and "You hold this task" in page
