from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.urls import reverse

from marlin.exceptions import ApplicationError
from reviews.models import Review
from reviews.services import review_decide
from tasks.models import Task, TaskEvent
from tests.factories import UserFactory
from tests.tasks.helpers import create_task, generate_all, submit


@pytest.fixture
def submitted_task(ready_repository, project, contractor):
    return submit(
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
    )


def test_it_accepts(submitted_task, reviewer):
    review = review_decide(task=submitted_task, reviewer=reviewer, decision="ACCEPT", feedback="")
    submitted_task.refresh_from_db()
    assert submitted_task.status == Task.Status.ACCEPTED
    assert submitted_task.accepted_at is not None
    assert review.round == 1
    event = TaskEvent.objects.filter(task=submitted_task).last()
    assert (event.from_status, event.to_status, event.actor) == ("SUBMITTED", "ACCEPTED", reviewer)


def test_it_bounces_with_feedback_recorded_on_the_event(submitted_task, reviewer):
    review_decide(
        task=submitted_task, reviewer=reviewer, decision="BOUNCE", feedback="Scores contradict."
    )
    submitted_task.refresh_from_db()
    assert submitted_task.status == Task.Status.BOUNCED
    assert TaskEvent.objects.filter(task=submitted_task).last().reason == "Scores contradict."


@pytest.mark.parametrize(
    ("decision", "feedback", "message"),
    [
        ("BOUNCE", "  ", "needs feedback"),
        ("MAYBE", "", "accept or bounce"),
        ("BOUNCE", "x" * 20_001, "limited to"),
    ],
)
def test_it_rejects_bad_decisions_and_stores_nothing(
    submitted_task, reviewer, decision, feedback, message
):
    with pytest.raises(ApplicationError, match=message):
        review_decide(task=submitted_task, reviewer=reviewer, decision=decision, feedback=feedback)
    submitted_task.refresh_from_db()
    assert submitted_task.status == Task.Status.SUBMITTED
    assert not Review.objects.exists()


def test_a_second_decision_on_the_same_round_is_refused(submitted_task, reviewer):
    second = UserFactory(username="rex", role="reviewer")
    review_decide(task=submitted_task, reviewer=reviewer, decision="ACCEPT", feedback="")
    stale = Task.objects.get(pk=submitted_task.pk)
    stale.status = Task.Status.SUBMITTED  # what the second reviewer's page still shows
    with pytest.raises(ApplicationError, match="already decided"):
        review_decide(task=stale, reviewer=second, decision="BOUNCE", feedback="no")
    assert Review.objects.filter(task=submitted_task).count() == 1
    submitted_task.refresh_from_db()
    assert submitted_task.status == Task.Status.ACCEPTED


def test_a_contractor_cannot_decide(submitted_task, other_contractor):
    with pytest.raises(ApplicationError, match="Only reviewers"):
        review_decide(
            task=submitted_task, reviewer=other_contractor, decision="ACCEPT", feedback=""
        )
    assert not Review.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_deciding_at_once_exactly_one_wins(ready_repository, project, contractor):
    task = submit(
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
    )
    reviewers = [UserFactory(username=f"rev{i}", role="reviewer") for i in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def decide(reviewer, decision):
        stale = Task.objects.get(pk=task.pk)
        barrier.wait()
        try:
            review_decide(task=stale, reviewer=reviewer, decision=decision, feedback="see notes")
            outcomes.append("won")
        except ApplicationError as exc:
            outcomes.append(exc.message)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=decide, args=(reviewers[0], "ACCEPT")),
        threading.Thread(target=decide, args=(reviewers[1], "BOUNCE")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["This submission was already decided by another reviewer.", "won"]
    assert Review.objects.filter(task=task).count() == 1
    task.refresh_from_db()
    decided = Review.objects.get(task=task).decision
    assert task.status == (Task.Status.ACCEPTED if decided == "ACCEPT" else Task.Status.BOUNCED)
    assert TaskEvent.objects.filter(task=task, from_status="SUBMITTED").count() == 1


def test_a_reviewers_own_double_click_keeps_their_decision_quietly(
    client, submitted_task, reviewer
):
    client.force_login(reviewer)
    url = reverse("reviews:decide", args=[submitted_task.pk])
    first = client.post(url, {"decision": "ACCEPT", "feedback": ""}, follow=True)
    second = client.post(url, {"decision": "ACCEPT", "feedback": ""}, follow=True)
    assert first.status_code == 200
    # The task left the queue, so the second click finds nothing to review: 404, no error text.
    assert second.status_code in (200, 404)
    assert "another reviewer" not in second.content.decode()
    stale = Task.objects.get(pk=submitted_task.pk)
    stale.status = Task.Status.SUBMITTED
    again = review_decide(task=stale, reviewer=reviewer, decision="ACCEPT", feedback="")
    assert again.pk == Review.objects.get(task=submitted_task).pk
    assert Review.objects.filter(task=submitted_task).count() == 1


def test_the_review_page_never_names_the_models(client, submitted_task, reviewer):
    client.force_login(reviewer)
    page = client.get(reverse("reviews:detail", args=[submitted_task.pk])).content.decode()
    assert "Candidate A" in page and "Candidate B" in page
    project = submitted_task.project
    for endpoint in (project.endpoint_a, project.endpoint_b):
        assert endpoint.name not in page and endpoint.model_id not in page
