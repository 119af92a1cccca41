"""A project's pool: which pair each new task gets, and what adding, retiring, disabling and
saturating an endpoint does to the draw (tasks/pool.py over tasks/pairing.py)."""

from __future__ import annotations

from collections import Counter

import pytest
from django.test import override_settings

from marlin.exceptions import ApplicationError
from reviews.export_filters import ExportFilters
from reviews.exports import native_records
from tasks import pool
from tasks.models import Candidate, Judgement, ModelEndpoint, Project, ProjectEndpoint, Task
from tests.factories import ModelEndpointFactory, ProjectFactory
from tests.tasks.helpers import create_task


def _pair(task: Task) -> frozenset[str]:
    return frozenset({task.first_endpoint.name, task.second_endpoint.name})


def _tasks(n, *, project, contractor, repository) -> list[Task]:
    return [
        create_task(contractor=contractor, project=project, repository=repository) for _ in range(n)
    ]


@pytest.fixture
def trio(db):
    endpoints = [ModelEndpointFactory(name=name) for name in ("ant", "bee", "cat")]
    return ProjectFactory(endpoints=endpoints, pair_sampling=Project.PairSampling.UNIFORM)


def test_each_task_gets_one_pair_of_the_pool_for_every_turn(trio, contractor, ready_repository):
    tasks = _tasks(45, project=trio, contractor=contractor, repository=ready_repository)
    pairs = Counter(_pair(t) for t in tasks)
    # Uniform over three pairs: each is drawn, about 15 times (binomial sd 3.2).
    assert set(pairs) == {
        frozenset({"ant", "bee"}), frozenset({"ant", "cat"}), frozenset({"bee", "cat"})
    }  # fmt: skip
    assert all(6 <= n <= 24 for n in pairs.values()), pairs
    for task in tasks:
        assert task.first_endpoint_id < task.second_endpoint_id
        answered = {c.endpoint_id for c in Candidate.objects.filter(turn__task=task)}
        assert answered == {task.first_endpoint_id, task.second_endpoint_id}


def test_weighted_sampling_follows_the_weights(contractor, ready_repository):
    heavy = ModelEndpointFactory(name="heavy")
    project = ProjectFactory(
        endpoints=[ModelEndpointFactory(), ModelEndpointFactory(), heavy],
        pair_sampling=Project.PairSampling.WEIGHTED,
    )
    project.pool.filter(endpoint=heavy).update(weight=8)
    tasks = _tasks(40, project=project, contractor=contractor, repository=ready_repository)
    with_heavy = sum("heavy" in _pair(t) for t in tasks)
    # P(heavy in the pair) = (8 + 8) / (1 + 8 + 8) = 0.94 (expect 37.6 of 40); uniform would
    # give 0.67 (26.7). Seeds vary with the project's id, so the bound leaves room.
    assert with_heavy >= 31


def test_an_endpoint_added_mid_project_is_drawn_at_once(trio, contractor, ready_repository):
    trio.pair_sampling = Project.PairSampling.ADAPTIVE
    trio.save()
    _tasks(12, project=trio, contractor=contractor, repository=ready_repository)
    ProjectEndpoint.objects.create(project=trio, endpoint=ModelEndpointFactory(name="dog"))
    following = _tasks(6, project=trio, contractor=contractor, repository=ready_repository)
    assert "dog" in _pair(following[0])
    # Its warm-up: its first tasks all go to it, whatever the seed.
    assert all("dog" in _pair(t) for t in following[:3])


def test_a_retired_endpoint_gets_no_new_task_and_its_tasks_are_untouched(
    trio, contractor, ready_repository
):
    earlier = _tasks(9, project=trio, contractor=contractor, repository=ready_repository)
    with_cat = [t for t in earlier if "cat" in _pair(t)]
    assert with_cat
    before = {t.pk: (t.first_endpoint_id, t.second_endpoint_id, t.status) for t in earlier}
    trio.pool.filter(endpoint__name="cat").update(is_enabled=False)
    later = _tasks(15, project=trio, contractor=contractor, repository=ready_repository)
    assert {_pair(t) for t in later} == {frozenset({"ant", "bee"})}
    after = {
        t.pk: (t.first_endpoint_id, t.second_endpoint_id, t.status)
        for t in Task.objects.filter(pk__in=before)
    }
    assert after == before
    states = {e.endpoint.name: e.state for e in pool.pool_entries(trio)}
    assert states == {"ant": "drawing tasks", "bee": "drawing tasks", "cat": "retired"}


def test_exports_are_unchanged_by_adding_and_retiring_endpoints(
    project, contractor, ready_repository, reviewer
):
    from tests.tasks.helpers import decide, generate_all, submit

    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    generate_all(task)
    submit(task)
    decide(task, reviewer=reviewer)
    before = list(native_records(ExportFilters()))
    assert [r["pair"] for r in before] == [[task.first_endpoint.name, task.second_endpoint.name]]
    ProjectEndpoint.objects.create(project=project, endpoint=ModelEndpointFactory())
    project.pool.filter(endpoint=task.first_endpoint).update(is_enabled=False)
    assert list(native_records(ExportFilters())) == before


def test_a_disabled_endpoint_is_never_drawn_and_two_are_needed(trio, contractor, ready_repository):
    ModelEndpoint.objects.filter(name="bee").update(is_enabled=False)
    tasks = _tasks(8, project=trio, contractor=contractor, repository=ready_repository)
    assert {_pair(t) for t in tasks} == {frozenset({"ant", "cat"})}
    assert {e.endpoint.name: e.state for e in pool.pool_entries(trio)}["bee"] == (
        "endpoint disabled"
    )
    trio.pool.filter(endpoint__name="cat").update(is_enabled=False)
    with pytest.raises(ApplicationError, match="models are paused"):
        create_task(contractor=contractor, project=trio, repository=ready_repository)
    assert Task.objects.count() == 8
    assert "no new tasks: fewer than two endpoints can answer" in pool.pool_summary(
        pool.pool_entries(trio)
    )


@override_settings(MARLIN_POOL_SATURATION_QUEUE=2)
def test_a_saturated_endpoint_is_skipped_while_two_others_can_answer(
    trio, contractor, ready_repository
):
    cat = trio.pool.get(endpoint__name="cat").endpoint
    cat.max_concurrency = 1
    cat.save()
    # Three tasks that all go to cat (bee retired meanwhile), one of its candidates running.
    trio.pool.filter(endpoint__name="bee").update(is_enabled=False)
    _tasks(3, project=trio, contractor=contractor, repository=ready_repository)
    trio.pool.filter(endpoint__name="bee").update(is_enabled=True)
    running = Candidate.objects.filter(endpoint=cat).first()
    Candidate.objects.filter(pk=running.pk).update(status=Candidate.Status.RUNNING)
    entry = {e.endpoint.name: e for e in pool.pool_entries(trio)}["cat"]
    assert entry.is_saturated
    assert entry.state.startswith("saturated (1 running,")
    assert "1 saturated" in pool.pool_summary(pool.pool_entries(trio))
    later = _tasks(10, project=trio, contractor=contractor, repository=ready_repository)
    assert {_pair(t) for t in later} == {frozenset({"ant", "bee"})}
    # With only one other left, the task waits in cat's queue rather than being refused.
    trio.pool.filter(endpoint__name="bee").update(is_enabled=False)
    queued = create_task(contractor=contractor, project=trio, repository=ready_repository)
    assert _pair(queued) == frozenset({"ant", "cat"})


def test_draws_repeat_under_the_seed(contractor, ready_repository):
    def run(name):
        endpoints = [ModelEndpointFactory() for _ in range(5)]
        project = ProjectFactory(
            name=name, endpoints=endpoints, pair_sampling=Project.PairSampling.UNIFORM
        )
        tasks = _tasks(8, project=project, contractor=contractor, repository=ready_repository)
        index = {e.pk: i for i, e in enumerate(endpoints)}
        return [(index[t.first_endpoint_id], index[t.second_endpoint_id]) for t in tasks], project

    first, project = run("first")
    # The same project state gives the same draw.
    assert pool.pair_draw(project=project) == pool.pair_draw(project=project)
    with override_settings(MARLIN_PAIRING_SEED=None):
        assert len({pool.pair_draw(project=project) for _ in range(40)}) > 1
    assert len(set(first)) > 1


def test_adaptive_reads_judged_outcomes_of_the_project(trio, contractor, ready_repository):
    from tests.tasks.helpers import generate_all, submit

    trio.pair_sampling = Project.PairSampling.ADAPTIVE
    trio.save()
    tasks = _tasks(3, project=trio, contractor=contractor, repository=ready_repository)
    for task in tasks:
        generate_all(task)
        submit(task)
    wins = pool._judged_wins(trio)
    assert sum(wins.values()) == 3
    assigned = pool._assigned(trio, wins)
    assert sum(assigned.values()) == 3
    assert Judgement.objects.count() == 3
