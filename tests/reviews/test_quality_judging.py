"""Overlap judging tasks and gold turns, through the services."""

from __future__ import annotations

from decimal import Decimal

import pytest

from marlin.exceptions import ApplicationError, ConflictError, PermissionDeniedError
from reviews.models import JudgingTask
from reviews.quality_gold import gold_accuracy_by_contractor, gold_grade, gold_turn_mark
from reviews.quality_overlap import (
    judging_task_candidates,
    judging_task_next,
    judging_task_submit,
    judging_tasks_for_accepted,
)
from reviews.quality_share import in_share
from tests.factories import UserFactory
from tests.tasks.helpers import create_task, decide, generate_all, submit, valid_scores

pytestmark = pytest.mark.django_db

WHY = "Candidate A checks the divisor before dividing; B does not."


def accepted(project, repository, contractor, reviewer, prompt="Make div safe."):
    task = submit(
        generate_all(
            create_task(
                contractor=contractor, project=project, repository=repository, prompt=prompt
            )
        )
    )
    decide(task, reviewer=reviewer)
    task.refresh_from_db()
    return task


@pytest.fixture
def third_contractor(db):
    from marlin import roles

    return UserFactory(username="erin", role=roles.CONTRACTOR)


def test_share_is_stable_and_bounded():
    keys = [f"overlap:{n}" for n in range(2000)]
    assert not any(in_share(key=k, percent=0) for k in keys)
    assert all(in_share(key=k, percent=100) for k in keys)
    hits = sum(in_share(key=k, percent=10) for k in keys)
    assert 150 <= hits <= 250  # about 10 %
    assert [in_share(key=k, percent=10) for k in keys] == [
        in_share(key=k, percent=10) for k in keys
    ]


def test_acceptance_opens_a_judging_task_in_the_overlap_share(
    project, ready_repository, contractor, reviewer
):
    project.overlap_percent = 100
    project.save()
    task = accepted(project, ready_repository, contractor, reviewer)
    opened = JudgingTask.objects.get()
    assert opened.turn.task == task
    assert opened.status == JudgingTask.Status.OPEN and opened.contractor is None


def test_no_overlap_share_opens_nothing(project, ready_repository, contractor, reviewer):
    accepted(project, ready_repository, contractor, reviewer)
    assert not JudgingTask.objects.exists()


def test_the_author_never_gets_their_own_turn(
    project, ready_repository, contractor, other_contractor, reviewer
):
    project.overlap_percent = 100
    project.save()
    accepted(project, ready_repository, contractor, reviewer)
    assert judging_task_next(user=contractor) is None
    got = judging_task_next(user=other_contractor)
    assert got is not None and got.contractor == other_contractor
    assert got.status == JudgingTask.Status.TAKEN
    # Asking again gives the task they hold, not a second one.
    assert judging_task_next(user=other_contractor).pk == got.pk


def test_only_contractors_judge(project, ready_repository, contractor, reviewer):
    with pytest.raises(PermissionDeniedError, match="Only contractors judge pairs"):
        judging_task_next(user=reviewer)


def test_swapped_task_shows_the_candidates_in_swapped_slots(
    project, ready_repository, contractor, other_contractor, reviewer
):
    project.overlap_percent = 100
    project.save()
    accepted(project, ready_repository, contractor, reviewer)
    got = judging_task_next(user=other_contractor)
    shown = judging_task_candidates(judging_task=got)
    expected = ("B", "A") if got.swapped else ("A", "B")
    assert (shown.a.slot, shown.b.slot) == expected


def test_submit_checks_the_judgement_and_pays_the_judging_rate(
    project, ready_repository, contractor, other_contractor, reviewer
):
    project.overlap_percent = 100
    project.pay_per_judging_task = Decimal("35.00")
    project.save()
    accepted(project, ready_repository, contractor, reviewer)
    got = judging_task_next(user=other_contractor)
    with pytest.raises(ApplicationError, match="seven points"):
        judging_task_submit(
            judging_task=got, by=other_contractor, preference=9,
            scores=valid_scores(project), justification=WHY,
        )  # fmt: skip
    with pytest.raises(ApplicationError, match="at least"):
        judging_task_submit(
            judging_task=got, by=other_contractor, preference=-1,
            scores=valid_scores(project), justification="Short.",
        )  # fmt: skip
    got.refresh_from_db()
    assert got.status == JudgingTask.Status.TAKEN and got.preference is None
    judging_task_submit(
        judging_task=got, by=other_contractor, preference=-1,
        scores=valid_scores(project), justification=WHY,
    )  # fmt: skip
    got.refresh_from_db()
    assert got.status == JudgingTask.Status.SUBMITTED
    assert got.earned == Decimal("35.00")
    with pytest.raises(ConflictError, match="already submitted"):
        judging_task_submit(
            judging_task=got, by=other_contractor, preference=-1,
            scores=valid_scores(project), justification=WHY,
        )  # fmt: skip


def test_another_contractor_cannot_submit_it(
    project, ready_repository, contractor, other_contractor, third_contractor, reviewer
):
    project.overlap_percent = 100
    project.save()
    accepted(project, ready_repository, contractor, reviewer)
    got = judging_task_next(user=other_contractor)
    with pytest.raises(PermissionDeniedError, match="another contractor's"):
        judging_task_submit(
            judging_task=got, by=third_contractor, preference=-1,
            scores=valid_scores(project), justification=WHY,
        )  # fmt: skip


def test_gold_rules(project, ready_repository, contractor, reviewer, admin_user):
    task = accepted(project, ready_repository, contractor, reviewer)
    turn = task.turns.get()
    with pytest.raises(PermissionDeniedError, match="Only admins"):
        gold_turn_mark(turn=turn, by=reviewer, expected=-1)
    with pytest.raises(ApplicationError, match="low <= high"):
        gold_turn_mark(
            turn=turn, by=admin_user, expected=-1, score_ranges={"A": {"correctness": [4, 2]}}
        )
    with pytest.raises(ApplicationError, match="axis the project lacks"):
        gold_turn_mark(turn=turn, by=admin_user, expected=-1, score_ranges={"A": {"speed": [1, 2]}})
    gold_turn_mark(turn=turn, by=admin_user, expected=-1)
    with pytest.raises(ConflictError, match="gold already"):
        gold_turn_mark(turn=turn, by=admin_user, expected=1)


def test_gold_not_accepted_is_refused(project, ready_repository, contractor, admin_user):
    task = submit(
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
    )
    with pytest.raises(ApplicationError, match="accepted task"):
        gold_turn_mark(turn=task.turns.get(), by=admin_user, expected=-1)


def _gold_world(project, repository, contractor, reviewer, admin_user, ranges=None):
    """A gold turn (A is better) and an overlap task, with every judging task gold."""
    project.overlap_percent = 100
    project.gold_percent = 100
    project.save()
    gold_task = accepted(project, repository, contractor, reviewer, prompt="Make div safe.")
    gold = gold_turn_mark(
        turn=gold_task.turns.get(), by=admin_user, expected=-1, score_ranges=ranges
    )
    JudgingTask.objects.all().delete()  # the gold turn's own overlap task: not needed here
    accepted(project, repository, contractor, reviewer, prompt="Add a power function.")
    return gold


@pytest.mark.parametrize("shown_preference_if_unswapped", [-2, 2])
def test_gold_is_mixed_in_and_graded_in_the_turns_own_slots(
    project, ready_repository, contractor, other_contractor, reviewer, admin_user,
    shown_preference_if_unswapped,
):  # fmt: skip
    gold = _gold_world(project, ready_repository, contractor, reviewer, admin_user)
    got = judging_task_next(user=other_contractor)
    assert got.gold == gold and got.turn == gold.turn
    # The contractor prefers what is shown as A (or B); swapped, that is the turn's other slot.
    preference = -shown_preference_if_unswapped if got.swapped else shown_preference_if_unswapped
    judging_task_submit(
        judging_task=got, by=other_contractor, preference=preference,
        scores=valid_scores(project), justification=WHY,
    )  # fmt: skip
    got.refresh_from_db()
    right = shown_preference_if_unswapped < 0
    assert gold_grade(judging_task=got) is right
    accuracy = gold_accuracy_by_contractor(project=project)[other_contractor.pk]
    assert (accuracy.graded, accuracy.right) == (1, int(right))


def test_gold_score_out_of_range_is_a_miss(
    project, ready_repository, contractor, other_contractor, reviewer, admin_user
):
    axis = project.axis_keys[0]
    _gold_world(
        project, ready_repository, contractor, reviewer, admin_user,
        ranges={"A": {axis: [4, 5]}},
    )  # fmt: skip
    got = judging_task_next(user=other_contractor)
    shown_a, shown_b = (1, 4) if got.swapped else (4, 1)
    # The right direction, and the turn's A scored 4, inside its tolerated 4-5.
    scores = valid_scores(project, a=shown_a, b=shown_b)
    preference = 2 if got.swapped else -2
    judging_task_submit(
        judging_task=got, by=other_contractor, preference=preference, scores=scores,
        justification=WHY,
    )  # fmt: skip
    got.refresh_from_db()
    assert gold_grade(judging_task=got) is True
    got.scores = valid_scores(project, a=2, b=2)  # the turn's A at 2, outside 4-5
    assert gold_grade(judging_task=got) is False


def test_gold_is_never_served_without_overlap_work(
    project, ready_repository, contractor, other_contractor, reviewer, admin_user
):
    _gold_world(project, ready_repository, contractor, reviewer, admin_user)
    JudgingTask.objects.filter(gold__isnull=True).delete()
    assert judging_task_next(user=other_contractor) is None


def test_a_turn_gets_one_overlap_task(project, ready_repository, contractor, reviewer):
    project.overlap_percent = 100
    project.save()
    task = accepted(project, ready_repository, contractor, reviewer)
    judging_tasks_for_accepted(task=task)  # a second call opens nothing more
    assert JudgingTask.objects.filter(turn__task=task).count() == 1


def test_a_pair_held_too_long_goes_back_to_the_others(
    settings, project, ready_repository, contractor, other_contractor, third_contractor, reviewer
):
    from datetime import timedelta

    from django.utils import timezone

    from reviews.quality_overlap import judging_tasks_release_stale

    settings.MARLIN_JUDGING_HOLD_HOURS = 24
    project.overlap_percent = 100
    project.save()
    accepted(project, ready_repository, contractor, reviewer)
    held = judging_task_next(user=other_contractor)
    assert judging_task_next(user=third_contractor) is None  # the only pair is held
    JudgingTask.objects.filter(pk=held.pk).update(
        taken_at=timezone.now() - timedelta(hours=23, minutes=59)
    )
    assert judging_tasks_release_stale() == 0  # not yet
    JudgingTask.objects.filter(pk=held.pk).update(taken_at=timezone.now() - timedelta(hours=25))
    assert judging_tasks_release_stale() == 1
    held.refresh_from_db()
    assert (held.status, held.contractor, held.taken_at) == (JudgingTask.Status.OPEN, None, None)
    assert judging_tasks_release_stale() == 0  # a second run finds nothing
    assert judging_task_next(user=third_contractor).pk == held.pk


def test_a_submitted_pair_never_lapses(
    project, ready_repository, contractor, other_contractor, reviewer
):
    from datetime import timedelta

    from django.utils import timezone

    from reviews.quality_overlap import judging_tasks_release_stale

    project.overlap_percent = 100
    project.save()
    accepted(project, ready_repository, contractor, reviewer)
    held = judging_task_next(user=other_contractor)
    judging_task_submit(
        judging_task=held, by=other_contractor, preference=-1,
        scores=valid_scores(project), justification=WHY,
    )  # fmt: skip
    JudgingTask.objects.filter(pk=held.pk).update(taken_at=timezone.now() - timedelta(days=9))
    assert judging_tasks_release_stale() == 0
    held.refresh_from_db()
    assert held.status == JudgingTask.Status.SUBMITTED and held.contractor == other_contractor


def test_the_release_job_is_registered_and_scheduled(settings):
    from marlin.celery import app as celery_app

    name = "reviews.jobs.judging_tasks_release_stale_run"
    celery_app.loader.import_default_modules()
    assert name in celery_app.tasks
    assert any(entry["task"] == name for entry in settings.CELERY_BEAT_SCHEDULE.values())
