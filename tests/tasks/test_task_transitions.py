from __future__ import annotations

import itertools

import pytest

from marlin.exceptions import InvalidTransition
from tasks.models import TASK_TRANSITIONS, Task, TaskEvent
from tests.factories import ProjectFactory, RepositoryFactory, UserFactory, pair_of

S = Task.Status


def _call(task: Task, to: str, user) -> None:
    """Ask for `to` through the named transition method that leads there."""
    if to == S.AWAITING_PREFERENCE:
        if task.status == S.BOUNCED:
            task.revise(by=user)
        else:
            task.finish_generation()
    elif to == S.GENERATING and task.status == S.AWAITING_PREFERENCE:
        task.continue_conversation(by=user)
    elif to == S.GENERATING:
        task.start_generation(by=user)
    elif to == S.GENERATION_FAILED:
        task.fail_generation(reason="model down")
    elif to == S.SUBMITTED:
        task.submit(by=user)
    elif to == S.ACCEPTED:
        task.accept(by=user)
    elif to == S.BOUNCED:
        task.bounce(by=user, reason="redo the scores")
    elif to == S.REJECTED:
        task.reject(by=user, reason="bounced past the round cap")
    else:
        # No method leads back to DRAFT; go through the shared mechanism directly.
        from marlin.state_machine import move

        move(task, to=to, transitions=TASK_TRANSITIONS)


def _task_in(status: str) -> Task:
    project = ProjectFactory()
    task = Task.objects.create(
        project=project,
        **pair_of(project),
        repository=RepositoryFactory(),
        contractor=UserFactory(),
        base_ref="main",
        commit_sha="a" * 40,
        title="t",
        kind=Task.Kind.BUG_FIX,
    )
    Task.objects.filter(pk=task.pk).update(status=status)
    task.refresh_from_db()
    return task


# The workflow as designed (STYLE 3.2, plus the round cap's REJECTED), written out by hand:
# the tests below check the methods against it, never against TASK_TRANSITIONS itself.
LEGAL = [
    (S.DRAFT, S.GENERATING),
    (S.GENERATING, S.AWAITING_PREFERENCE),
    (S.GENERATING, S.GENERATION_FAILED),
    (S.GENERATION_FAILED, S.GENERATING),
    (S.AWAITING_PREFERENCE, S.SUBMITTED),
    (S.AWAITING_PREFERENCE, S.GENERATING),  # a follow-up prompt
    (S.SUBMITTED, S.ACCEPTED),
    (S.SUBMITTED, S.BOUNCED),
    (S.SUBMITTED, S.REJECTED),
    (S.BOUNCED, S.AWAITING_PREFERENCE),
]
ILLEGAL = [pair for pair in itertools.product(S.values, S.values) if pair not in LEGAL]


def test_the_table_is_the_designed_workflow() -> None:
    assert {
        (source, target) for source, targets in TASK_TRANSITIONS.items() for target in targets
    } == set(LEGAL)
    assert set(TASK_TRANSITIONS) == set(S.values)
    assert len(ILLEGAL) == 8 * 8 - 10


@pytest.mark.django_db
@pytest.mark.parametrize(("source", "target"), LEGAL)
def test_it_allows_each_legal_transition_and_records_it(source: str, target: str) -> None:
    task = _task_in(source)
    actor = UserFactory()
    _call(task, target, actor)
    task.refresh_from_db()
    assert task.status == target
    event = TaskEvent.objects.get(task=task)
    assert (event.from_status, event.to_status) == (source, target)


@pytest.mark.django_db
@pytest.mark.parametrize(("source", "target"), ILLEGAL)
def test_it_refuses_each_illegal_transition_and_changes_nothing(source: str, target: str) -> None:
    task = _task_in(source)
    before = Task.objects.filter(pk=task.pk).values().get()
    with pytest.raises(InvalidTransition):
        _call(task, target, UserFactory())
    assert Task.objects.filter(pk=task.pk).values().get() == before
    assert not TaskEvent.objects.filter(task=task).exists()


@pytest.mark.django_db
def test_it_refuses_a_transition_when_another_process_moved_the_row_first() -> None:
    task = _task_in(S.SUBMITTED)
    stale = Task.objects.get(pk=task.pk)
    task.accept(by=UserFactory())
    # The stale copy still believes SUBMITTED; the compare-and-set must not match.
    with pytest.raises(InvalidTransition):
        stale.bounce(by=UserFactory(), reason="late")
    task.refresh_from_db()
    assert task.status == S.ACCEPTED
    assert TaskEvent.objects.filter(task=task).count() == 1


@pytest.mark.django_db
def test_revise_opens_a_new_round() -> None:
    task = _task_in(S.BOUNCED)
    task.revise(by=UserFactory())
    task.refresh_from_db()
    assert task.round == 2
