from __future__ import annotations

import pytest
from django.urls import reverse

from marlin.exceptions import ApplicationError, ConflictError, PermissionDeniedError
from reviews.claim_services import review_claim
from reviews.models import Earning, Notification, Review, ReviewClaim, ReviewNote
from reviews.services import NoteInput, review_decide
from tasks import services as task_services
from tasks.models import Task, TaskEvent
from tests.concurrency import run_racing, wait_until_waiting_on_locks
from tests.factories import UserFactory, pool_endpoints
from tests.tasks.helpers import create_task, decide, generate_all, submit, valid_scores


@pytest.fixture
def submitted_task(ready_repository, project, contractor):
    return submit(
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
    )


def test_it_accepts_and_fixes_the_earning(submitted_task, reviewer):
    review = decide(submitted_task, reviewer=reviewer)
    submitted_task.refresh_from_db()
    assert submitted_task.status == Task.Status.ACCEPTED
    assert submitted_task.accepted_at is not None
    assert review.round == 1 and review.claimed_at is not None
    event = TaskEvent.objects.filter(task=submitted_task).last()
    assert (event.from_status, event.to_status, event.actor) == ("SUBMITTED", "ACCEPTED", reviewer)
    assert Earning.objects.get(task=submitted_task).amount == submitted_task.project.pay_per_task
    # The claim ended with the decision.
    assert ReviewClaim.objects.get(task=submitted_task).ending == ReviewClaim.Ending.DECIDED


def test_it_bounces_with_feedback_and_notes_where_they_apply(submitted_task, reviewer):
    turn = submitted_task.turns.get()
    decide(
        submitted_task,
        reviewer=reviewer,
        decision="BOUNCE",
        feedback="Scores contradict.",
        notes=[
            NoteInput(turn_id=turn.pk, text="Look at the prompt again."),
            NoteInput(turn_id=turn.pk, slot="A", field="security", text="A leaks the token."),
            NoteInput(turn_id=turn.pk, field="justification", text="Say why."),
            NoteInput(turn_id=turn.pk, field="preference", text="   "),  # blank: dropped
        ],
    )
    submitted_task.refresh_from_db()
    assert submitted_task.status == Task.Status.BOUNCED
    assert TaskEvent.objects.filter(task=submitted_task).last().reason == "Scores contradict."
    notes = set(ReviewNote.objects.values_list("slot", "field", "text"))
    assert notes == {
        ("", "", "Look at the prompt again."),
        ("A", "security", "A leaks the token."),
        ("", "justification", "Say why."),
    }
    assert not Earning.objects.exists()
    assert Notification.objects.filter(user=submitted_task.contractor).count() == 1


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
    review_claim(task=submitted_task, reviewer=reviewer)
    with pytest.raises(ApplicationError, match=message):
        review_decide(task=submitted_task, reviewer=reviewer, decision=decision, feedback=feedback)
    submitted_task.refresh_from_db()
    assert submitted_task.status == Task.Status.SUBMITTED
    assert not Review.objects.exists()
    assert not Notification.objects.exists()


@pytest.mark.parametrize(
    ("note", "message"),
    [
        ({"slot": "A", "field": "speed"}, "Unknown field"),
        ({"slot": "", "field": "security"}, "must name candidate A or B"),
        ({"slot": "B", "field": "preference"}, "Only notes on a rubric score"),
        ({"slot": "C", "field": "security"}, "must name candidate A or B"),
    ],
)
def test_a_note_on_a_field_the_judgement_has_not_is_rejected(
    submitted_task, reviewer, note, message
):
    review_claim(task=submitted_task, reviewer=reviewer)
    turn = submitted_task.turns.get()
    with pytest.raises(ApplicationError, match=message):
        review_decide(
            task=submitted_task,
            reviewer=reviewer,
            decision="BOUNCE",
            feedback="Redo.",
            notes=[NoteInput(turn_id=turn.pk, text="x", **note)],
        )
    assert not Review.objects.exists() and not ReviewNote.objects.exists()
    submitted_task.refresh_from_db()
    assert submitted_task.status == Task.Status.SUBMITTED


def test_a_note_on_another_tasks_turn_is_rejected(
    submitted_task, reviewer, ready_repository, project, other_contractor
):
    other = create_task(contractor=other_contractor, project=project, repository=ready_repository)
    review_claim(task=submitted_task, reviewer=reviewer)
    with pytest.raises(ApplicationError, match="not part of this task"):
        review_decide(
            task=submitted_task,
            reviewer=reviewer,
            decision="BOUNCE",
            feedback="Redo.",
            notes=[NoteInput(turn_id=other.turns.get().pk, text="Wrong place")],
        )
    assert not Review.objects.exists() and not ReviewNote.objects.exists()


def test_deciding_needs_the_claim(submitted_task, reviewer):
    with pytest.raises(ConflictError, match="Claim this task"):
        review_decide(task=submitted_task, reviewer=reviewer, decision="ACCEPT", feedback="")
    second = UserFactory(username="rex", role="reviewer")
    review_claim(task=submitted_task, reviewer=second)
    with pytest.raises(ConflictError, match="already claimed"):
        review_decide(task=submitted_task, reviewer=reviewer, decision="ACCEPT", feedback="")
    assert not Review.objects.exists()


def test_a_decided_round_cannot_be_decided_again(submitted_task, reviewer):
    second = UserFactory(username="rex", role="reviewer")
    decide(submitted_task, reviewer=reviewer)
    stale = Task.objects.get(pk=submitted_task.pk)
    stale.status = Task.Status.SUBMITTED  # what the second reviewer's page still shows
    with pytest.raises(ApplicationError, match="accepted"):
        review_decide(task=stale, reviewer=second, decision="BOUNCE", feedback="no")
    assert Review.objects.filter(task=submitted_task).count() == 1
    submitted_task.refresh_from_db()
    assert submitted_task.status == Task.Status.ACCEPTED


def test_a_contractor_cannot_decide(submitted_task, other_contractor):
    with pytest.raises(PermissionDeniedError, match="Only reviewers"):
        review_decide(
            task=submitted_task, reviewer=other_contractor, decision="ACCEPT", feedback=""
        )
    assert not Review.objects.exists()


def _bounce_and_resubmit(task, reviewer, *, justification="A handles zero; B crashes badly."):
    decide(task, reviewer=reviewer, decision="BOUNCE", feedback="Look again.")
    task_services.task_revise(task=task, by=task.contractor)
    task.refresh_from_db()
    return task_services.task_submit(
        task=task,
        by=task.contractor,
        preference=-1,
        scores=valid_scores(task.project, a=4, b=3),
        justification=justification,
    )


def test_rounds_are_new_records_and_a_bounce_past_the_cap_rejects_for_good(
    submitted_task, reviewer
):
    project = submitted_task.project
    project.max_rounds = 2
    project.save()
    task = _bounce_and_resubmit(submitted_task, reviewer)
    assert task.round == 2 and task.status == Task.Status.SUBMITTED
    assert list(task.submissions.values_list("round", flat=True)) == [1, 2]
    judgements = task.turns.get().judgements.order_by("round")
    assert [(j.round, j.preference) for j in judgements] == [(1, -2), (2, -1)]

    review = decide(task, reviewer=reviewer, decision="BOUNCE", feedback="Still wrong.")
    task.refresh_from_db()
    assert review.rejects_task
    assert task.status == Task.Status.REJECTED
    assert "rejected" in Notification.objects.filter(user=task.contractor).first().message
    with pytest.raises(ApplicationError):
        task_services.task_revise(task=task, by=task.contractor)
    # A rejected task no longer counts against the repository's open-task quota.
    assert not Earning.objects.exists()


LAST_ROUND_NOTICE = "This is the last round this project allows"


@pytest.mark.parametrize(("max_rounds", "last"), [(None, False), (3, False), (2, True)])
def test_the_review_page_warns_of_the_last_round_as_the_decision_counts_it(
    client, submitted_task, reviewer, max_rounds, last
):
    """Round 2 of a project capped at `max_rounds`: the page's notice and the rule that
    makes a bounce reject (Task.is_last_round) are one computation."""
    project = submitted_task.project
    project.max_rounds = max_rounds
    project.save()
    task = _bounce_and_resubmit(submitted_task, reviewer)
    review_claim(task=task, reviewer=reviewer)
    client.force_login(reviewer)
    page = client.get(reverse("reviews:detail", args=[task.pk])).content.decode()
    assert 'id="review-form"' in page
    assert (LAST_ROUND_NOTICE in page) is last
    assert task.is_last_round is last
    review = decide(task, reviewer=reviewer, decision="BOUNCE", feedback="Still wrong.")
    assert review.rejects_task is last


def test_without_a_cap_a_bounce_never_rejects(submitted_task, reviewer):
    task = _bounce_and_resubmit(submitted_task, reviewer)
    task = _bounce_and_resubmit(task, reviewer)
    assert task.round == 3 and task.status == Task.Status.SUBMITTED


@pytest.mark.postgresql_only
@pytest.mark.django_db(transaction=True)
def test_two_reviewers_deciding_at_once_exactly_one_wins(ready_repository, project, contractor):
    """Both pass the status check while the task is still submitted; only the claim
    holder's decision is kept, and the other is told the submission was decided."""
    task = submit(
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
    )
    reviewers = [UserFactory(username=f"rev{i}", role="reviewer") for i in range(2)]
    review_claim(task=task, reviewer=reviewers[0])

    def run(reviewer, decision):
        stale = Task.objects.get(pk=task.pk)
        if reviewer == reviewers[1]:
            # Only once the holder is held up inside its transaction, past its claim's lock:
            # asking first, this reviewer would lock the claim before the holder and be told,
            # rightly but not under test here, that another reviewer holds it.
            wait_until_waiting_on_locks(1)
        return review_decide(task=stale, reviewer=reviewer, decision=decision, feedback="notes")

    outcomes = run_racing(run, (reviewers[0], "ACCEPT"), (reviewers[1], "BOUNCE"), hold=task)
    [loser] = [o for o in outcomes if isinstance(o, ConflictError)]
    # Not "the task is accepted" (the check before the transaction, which a serialised
    # run reaches) nor "claimed by another reviewer": the holder's claim ended under the
    # loser's lock wait.
    assert loser.message == "This submission was already decided by another reviewer."
    assert [o.reviewer for o in outcomes if isinstance(o, Review)] == [reviewers[0]]
    assert Review.objects.filter(task=task).count() == 1
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED
    assert (
        TaskEvent.objects.filter(task=task, from_status="SUBMITTED", to_status="ACCEPTED").count()
        == 1
    )
    assert (
        TaskEvent.objects.filter(task=task)
        .exclude(kind=TaskEvent.Kind.CLAIM)
        .filter(from_status="SUBMITTED")
        .count()
        == 1
    )


@pytest.mark.postgresql_only
@pytest.mark.django_db(transaction=True)
def test_the_same_reviewer_double_clicking_decide_records_one_decision(
    ready_repository, project, contractor
):
    task = submit(
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
    )
    reviewer = UserFactory(username="rev", role="reviewer")
    review_claim(task=task, reviewer=reviewer)

    def run():
        stale = Task.objects.get(pk=task.pk)
        return review_decide(task=stale, reviewer=reviewer, decision="ACCEPT", feedback="").pk

    # run_racing fails unless both clicks were inside the decision together, so the
    # second is answered by the race branch (its own earlier decision found after the
    # conflict), not by the status check that a serialised run would reach.
    results = run_racing(run, (), (), hold=task)
    review = Review.objects.get(task=task)
    # Both clicks are answered with the one decision; neither sees an error.
    assert results == [review.pk, review.pk]
    assert Earning.objects.filter(task=task).count() == 1
    assert Notification.objects.filter(task=task).count() == 1
    assert TaskEvent.objects.filter(task=task, to_status="ACCEPTED").count() == 1


def test_a_reviewers_own_double_click_on_the_page_keeps_their_decision_quietly(
    client, submitted_task, reviewer
):
    client.force_login(reviewer)
    client.post(reverse("reviews:claim", args=[submitted_task.pk]))
    url = reverse("reviews:decide", args=[submitted_task.pk])
    first = client.post(url, {"decision": "ACCEPT", "feedback": ""})
    second = client.post(url, {"decision": "ACCEPT", "feedback": ""})
    assert first.status_code == 302
    # The second click is answered as a success too: the same reviewer's decision stands.
    assert second.status_code == 302
    assert Review.objects.filter(task=submitted_task).count() == 1


def test_a_bounce_on_the_page_stores_per_field_notes(client, submitted_task, reviewer):
    client.force_login(reviewer)
    client.post(reverse("reviews:claim", args=[submitted_task.pk]))
    turn = submitted_task.turns.get()
    response = client.post(
        reverse("reviews:decide", args=[submitted_task.pk]),
        {
            "decision": "BOUNCE",
            "feedback": "Please recheck security.",
            f"note-{turn.pk}-B-security": "B is not safe.",
            f"note-{turn.pk}": "",
        },
    )
    assert response.status_code == 302
    note = ReviewNote.objects.get()
    assert (note.turn_id, note.slot, note.field, note.text) == (
        turn.pk,
        "B",
        "security",
        "B is not safe.",
    )


@pytest.mark.parametrize("name", ["note-x", "note-1-A", "note-1-A-Security", "note--preference"])
def test_a_malformed_note_field_is_refused_on_the_page(client, submitted_task, reviewer, name):
    client.force_login(reviewer)
    client.post(reverse("reviews:claim", args=[submitted_task.pk]))
    response = client.post(
        reverse("reviews:decide", args=[submitted_task.pk]),
        {"decision": "BOUNCE", "feedback": "Redo", name: "text"},
    )
    assert response.status_code == 400
    assert "malformed" in response.content.decode()
    assert not Review.objects.exists()


def test_a_bounce_without_feedback_on_the_page_is_a_400(client, submitted_task, reviewer):
    client.force_login(reviewer)
    client.post(reverse("reviews:claim", args=[submitted_task.pk]))
    response = client.post(
        reverse("reviews:decide", args=[submitted_task.pk]), {"decision": "BOUNCE"}
    )
    assert response.status_code == 400
    assert "needs feedback" in response.content.decode()
    assert not Review.objects.exists()


def test_the_review_page_never_names_the_models(client, submitted_task, reviewer):
    client.force_login(reviewer)
    page = client.get(reverse("reviews:detail", args=[submitted_task.pk])).content.decode()
    assert "Candidate A" in page and "Candidate B" in page
    project = submitted_task.project
    for endpoint in (pool_endpoints(project)[0], pool_endpoints(project)[1]):
        assert endpoint.name not in page and endpoint.model_id not in page
