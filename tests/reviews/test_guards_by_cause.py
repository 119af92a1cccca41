"""Guards pinned by their cause: each test fails if the guard itself is removed, even where
another check would still turn the request down (a 403 from the role, a 404 from a
selector), and the review queue's order is written out literally."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.urls import reverse
from rest_framework.test import APIClient

from marlin import roles
from marlin.exceptions import ApplicationError, PermissionDeniedError
from reviews.claim_services import review_claim
from reviews.models import Review, ReviewClaim
from reviews.selectors import review_queue
from reviews.services import review_decide
from tasks import services as task_services
from tasks.models import Task, TaskEvent
from tests.factories import UserFactory
from tests.tasks.helpers import create_task, generate_all, submit, valid_scores


@pytest.fixture
def sam(db):
    """A reviewer who also works as a contractor: the role checks let them through, so only
    the own-task rule stands between them and their own task."""
    sam = UserFactory(username="sam", role=roles.REVIEWER)
    sam.groups.add(Group.objects.get(name=roles.CONTRACTOR))
    return sam


@pytest.fixture
def sams_submitted_task(ready_repository, project, sam):
    return submit(
        generate_all(create_task(contractor=sam, project=project, repository=ready_repository))
    )


@pytest.fixture
def awaiting_task(ready_repository, project, contractor):
    return generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )


def _snapshot(task: Task) -> tuple:
    return (
        Task.objects.filter(pk=task.pk).values("status", "round", "submitted_at").get(),
        TaskEvent.objects.filter(task=task).count(),
        ReviewClaim.objects.filter(task=task).count(),
        Review.objects.filter(task=task).count(),
    )


def test_a_reviewer_cannot_claim_their_own_task(sams_submitted_task, sam):
    before = _snapshot(sams_submitted_task)
    with pytest.raises(PermissionDeniedError, match=r"^You cannot review your own task\.$"):
        review_claim(task=sams_submitted_task, reviewer=sam)
    assert _snapshot(sams_submitted_task) == before


def test_a_reviewer_cannot_decide_their_own_task_even_holding_its_claim(sams_submitted_task, sam):
    # A claim the own-task rule of review_claim would never grant (made by hand): the
    # decision must refuse on its own account.
    now = sams_submitted_task.submitted_at
    ReviewClaim.objects.create(
        task=sams_submitted_task, round=1, reviewer=sam, claimed_at=now,
        expires_at=now + timedelta(days=1),
    )  # fmt: skip
    before = _snapshot(sams_submitted_task)
    with pytest.raises(PermissionDeniedError, match=r"^You cannot review your own task\.$"):
        review_decide(task=sams_submitted_task, reviewer=sam, decision="ACCEPT", feedback="")
    assert _snapshot(sams_submitted_task) == before


def test_only_reviewers_claim_and_decide(awaiting_task, other_contractor, reviewer):
    task = submit(awaiting_task)
    with pytest.raises(PermissionDeniedError, match=r"^Only reviewers can claim tasks\.$"):
        review_claim(task=task, reviewer=other_contractor)
    review_claim(task=task, reviewer=reviewer)
    before = _snapshot(task)
    with pytest.raises(PermissionDeniedError, match=r"^Only reviewers can review tasks\.$"):
        review_decide(task=task, reviewer=other_contractor, decision="ACCEPT", feedback="")
    assert _snapshot(task) == before


def test_a_decision_must_be_accept_or_bounce(awaiting_task, reviewer):
    task = submit(awaiting_task)
    review_claim(task=task, reviewer=reviewer)
    before = _snapshot(task)
    with pytest.raises(ApplicationError, match=r"^The decision must be accept or bounce\.$"):
        review_decide(task=task, reviewer=reviewer, decision="REJECT", feedback="no")
    assert _snapshot(task) == before


def _judgement(project) -> dict:
    return {
        "preference": -2,
        "scores": valid_scores(project),
        "justification": "Someone else's judgement must never be stored.",
    }


def test_another_contractor_cannot_submit_continue_or_revise_a_task(
    awaiting_task, other_contractor, reviewer
):
    task = awaiting_task
    before = _snapshot(task)
    refusal = r"^Only the task's contractor can {} it\.$"
    with pytest.raises(ApplicationError, match=refusal.format("submit")):
        task_services.task_submit(task=task, by=other_contractor, **_judgement(task.project))
    with pytest.raises(ApplicationError, match=refusal.format("continue")):
        task_services.task_follow_up(
            task=task, by=other_contractor, prompt="And tests.", **_judgement(task.project)
        )
    assert _snapshot(task) == before
    assert task.turns.count() == 1 and not task.turns.get().judgements.exists()

    task = submit(task)
    review_claim(task=task, reviewer=reviewer)
    review_decide(task=task, reviewer=reviewer, decision="BOUNCE", feedback="Explain B.")
    before = _snapshot(task)
    with pytest.raises(ApplicationError, match=refusal.format("revise")):
        task_services.task_revise(task=task, by=other_contractor)
    assert _snapshot(task) == before


def test_a_closed_project_takes_no_new_tasks(ready_repository, project, contractor):
    project.is_active = False
    project.save()
    with pytest.raises(ApplicationError, match=rf"^Project {project} is closed\.$"):
        create_task(contractor=contractor, project=project, repository=ready_repository)
    assert not Task.objects.exists()


def test_the_queue_is_oldest_submission_first(ready_repository, project, contractor, reviewer):
    # Created first, second, third; submitted second, third, first: neither the creation
    # order nor newest-first gives the order below.
    first, second, third = (
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
        for _ in range(3)
    )
    for hour, task in ((9, second), (10, third), (11, first)):
        with time_machine.travel(datetime(2031, 5, 6, hour, tzinfo=UTC), tick=False):
            submit(task)
    expected = [second.pk, third.pk, first.pk]

    assert [t.pk for t in review_queue(user=reviewer)] == expected
    client = APIClient()
    client.force_authenticate(reviewer)
    response = client.get(reverse("api-review-queue"))
    data = response.json()
    rows = data["results"] if isinstance(data, dict) else data
    assert [row["id"] for row in rows] == expected
