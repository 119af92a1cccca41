"""Dashboard aggregates (reviews/aggregates.py): what review_decide adds decision by decision
equals a rebuild from scratch, and the dashboard and leaderboard read from them equal the
ones computed from every judgement; two acceptances at once lose no count; a page's queries
do not grow with the judgements."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from reviews import (
    aggregates,
    dashboard,
    leaderboard,
    quality_agreement,
    quality_audits,
    quality_overlap,
)
from reviews.claim_services import review_claim
from reviews.models import JudgingTask, ProjectDecisionCount, Review, ReviewAudit
from reviews.quality_audits import audit_decide, audit_take
from reviews.services import review_decide
from tasks import services
from tasks.models import Candidate, Judgement, PairOutcomeCount, Submission, Task, Turn
from tests.concurrency import run_racing
from tests.factories import ModelEndpointFactory, ProjectFactory, UserFactory
from tests.tasks.helpers import create_task, decide, generate_all


def _snapshot() -> dict[str, list[tuple]]:
    """Every aggregate row, without its id (the rebuild numbers rows afresh)."""
    found = {}
    for model in aggregates.AGGREGATE_MODELS:
        fields = [f.attname for f in model._meta.concrete_fields if not f.primary_key]
        found[model.__name__] = sorted(model.objects.values_list(*fields))
    return found


def _random_scores(rng: random.Random, project) -> dict:
    return {slot: {k: rng.randint(1, 5) for k in project.axis_keys} for slot in ("A", "B")}


def _submit(task, contractor, rng, project):
    return services.task_submit(
        task=task,
        by=contractor,
        preference=rng.randint(-3, 3),
        scores=_random_scores(rng, project),
        justification="Judged at random for the aggregates test.",
        confirm_warnings=True,
    )


def _new_submitted(repository, contractor, project, *, seed: int) -> Task:
    task = generate_all(create_task(contractor=contractor, project=project, repository=repository))
    return _submit(task, contractor, random.Random(seed), project)  # noqa: S311 - test data


def _assert_aggregates_equal_scratch(projects) -> None:
    incremental = _snapshot()
    for project in [None, *projects]:
        assert dashboard.dashboard(project=project, samples=30) == (
            dashboard.dashboard_from_scratch(project=project, samples=30)
        )
    for project in projects:
        assert leaderboard.leaderboard(project=project, samples=30) == (
            leaderboard.leaderboard_from_scratch(project=project, samples=30)
        )
    for project in [None, *projects]:
        assert quality_audits.reviewer_overturn_rates(project=project) == (
            quality_audits.reviewer_overturn_rates_from_scratch(project=project)
        )
        kept = quality_agreement.agreement_tables(project=project)
        scratch = quality_agreement.agreement_tables_from_scratch(project=project)
        assert _tables(kept) == _tables(scratch)
    aggregates.aggregates_rebuild()
    assert _snapshot() == incremental


def _tables(found) -> dict:
    """AgreementTables as plain lists, comparable with ==."""

    def plain(tables):
        return (
            tables.preference.tolist(),
            {axis: table.tolist() for axis, table in tables.scores.items() if table.any()},
        )

    return {
        "overall": plain(found.overall),
        "contractors": {pk: plain(t) for pk, t in found.by_contractor.items()},
        "reviewers": {pk: plain(t) for pk, t in found.by_reviewer.items()},
    }


def test_decisions_one_by_one_add_up_to_a_rebuild(
    ready_repository, contractor, other_contractor, reviewer
):
    """A random sequence of accepts, bounces, rejects, tasks left in review and audits (some
    overturned): the aggregates review_decide kept equal a rebuild, and the dashboards read
    from them equal the ones computed from every judgement."""
    rng = random.Random(19)  # noqa: S311 - test data
    ants = [ModelEndpointFactory(name=n) for n in ("ant", "bee", "cat")]
    first = ProjectFactory(
        name="Three", endpoints=ants, audit_percent=100, max_rounds=2, overlap_percent=100
    )
    second = ProjectFactory(name="Two", endpoints=[ants[0], ModelEndpointFactory(name="dog")])
    auditor = UserFactory(username="audra", role="reviewer")
    for step in range(14):
        project = first if step % 3 else second
        task = generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
        task = _submit(task, contractor, rng, project)
        roll = rng.random()
        if roll < 0.15:
            continue  # left in review: not counted until decided
        if roll < 0.45:
            decide(task, reviewer=reviewer, decision="BOUNCE", feedback="Look again.")
            if rng.random() < 0.3:
                continue  # back with the contractor
            task = services.task_revise(task=task, by=contractor)
            task.refresh_from_db()
            task = _submit(task, contractor, rng, project)
            if project == first and rng.random() < 0.4:
                # The last allowed round bounced: rejected, closed without judgements.
                decide(task, reviewer=reviewer, decision="BOUNCE", feedback="Still wrong.")
                continue
        decide(task, reviewer=reviewer)
    for audit in ReviewAudit.objects.all():
        audit_take(audit=audit, by=auditor)
        audit_decide(audit=audit, by=auditor, overturn=rng.random() < 0.5, note="Checked.")
    # A second contractor judges the overlap turns again, through the service.
    while (judging := quality_overlap.judging_task_next(user=other_contractor)) is not None:
        quality_overlap.judging_task_submit(
            judging_task=judging,
            by=other_contractor,
            preference=rng.randint(-3, 3),
            scores=_random_scores(rng, judging.project),
            justification="Judged again at random for the aggregates test.",
        )
    assert JudgingTask.objects.filter(status=JudgingTask.Status.SUBMITTED).count() >= 3
    # Spread the submissions and decisions over the last 40 days, so the per-day throughput
    # reads stored past days, the window's partial first day and today.
    now = timezone.now()
    for model in (Submission, Review):
        for pk in model.objects.values_list("pk", flat=True):
            ago = timedelta(days=rng.randint(0, 40), hours=rng.randint(0, 23))
            model.objects.filter(pk=pk).update(created_at=now - ago)
    assert Task.objects.filter(status=Task.Status.REJECTED).exists()
    assert Task.objects.filter(status=Task.Status.ACCEPTED).count() >= 5
    board = dashboard.dashboard()
    assert len(board.reviews_per_day) > 5 and len(board.submissions_per_day) > 5
    assert ReviewAudit.objects.filter(status=ReviewAudit.Status.OVERTURNED).exists()
    _assert_aggregates_equal_scratch([first, second])


def test_a_decision_counts_only_what_it_changed(ready_repository, contractor, reviewer, project):
    """A bounce adds a decision and no judgement; the accept of the next round adds the
    round's judgement and the closed task with its two rounds."""
    task = _new_submitted(ready_repository, contractor, project, seed=1)
    decide(task, reviewer=reviewer, decision="BOUNCE", feedback="Again.")
    counts = ProjectDecisionCount.objects.get(project=project)
    assert (counts.judged_turns, counts.reviews, counts.bounces, counts.closed_tasks) == (
        0,
        1,
        1,
        0,
    )
    assert not PairOutcomeCount.objects.exists()
    task = services.task_revise(task=task, by=contractor)
    task.refresh_from_db()
    decide(_submit(task, contractor, random.Random(2), project), reviewer=reviewer)  # noqa: S311
    counts.refresh_from_db()
    assert (counts.judged_turns, counts.reviews, counts.bounces) == (1, 2, 1)
    assert (counts.closed_tasks, counts.closed_rounds) == (1, 2)
    overall = PairOutcomeCount.objects.get(project=project, axis="")
    assert overall.a_won + overall.b_won + overall.tied == 1
    _assert_aggregates_equal_scratch([project])


@pytest.mark.postgresql_only
@pytest.mark.django_db(transaction=True)
def test_two_acceptances_at_once_lose_no_count(ready_repository, project, contractor):
    """Two reviewers accept two tasks of the same pair at the same moment: both write the
    same aggregate rows, the second waiting on the first's uncommitted row, and both counts
    are kept (an UPDATE ... SET n = EXCLUDED.n, or a read and a write back, keeps one)."""
    reviewers = [UserFactory(username=f"rev{i}", role="reviewer") for i in range(2)]
    rng = random.Random(3)  # noqa: S311 - test data
    tasks = []
    for reviewer in reviewers:
        task = generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
        task = _submit(task, contractor, rng, project)
        review_claim(task=task, reviewer=reviewer)
        tasks.append(task)

    def run(task, reviewer):
        return review_decide(task=task, reviewer=reviewer, decision="ACCEPT", feedback="")

    # The test holds the project row: each acceptance writes its aggregate rows and then
    # waits at commit (the rows' foreign key to the project), so the two overlap.
    run_racing(run, *zip(tasks, reviewers, strict=True), hold=project)
    counts = ProjectDecisionCount.objects.get(project=project)
    assert (counts.judged_turns, counts.reviews, counts.closed_tasks) == (2, 2, 2)
    rows = PairOutcomeCount.objects.filter(project=project, axis="")
    assert sum(r.a_won + r.b_won + r.tied for r in rows) == 2
    _assert_aggregates_equal_scratch([project])


def _add_turns(task: Task, count: int) -> None:
    """More judged turns of an accepted task written directly, then the aggregates rebuilt
    (the documented repair after writing behind review_decide's back)."""
    ea, eb = task.first_endpoint, task.second_endpoint
    start = task.turns.count() + 1
    turns = Turn.objects.bulk_create(
        Turn(task=task, number=start + k, prompt="Next.") for k in range(count)
    )
    Candidate.objects.bulk_create(
        Candidate(turn=turn, slot=slot, endpoint=endpoint, status="SUCCEEDED")
        for turn in turns
        for slot, endpoint in (("A", ea), ("B", eb))
    )
    scores = {
        "A": dict.fromkeys(task.project.axis_keys, 4),
        "B": dict.fromkeys(task.project.axis_keys, 2),
    }
    Judgement.objects.bulk_create(
        Judgement(turn=turn, round=task.round, preference=(k % 7) - 3, scores=scores,
                  justification="Written for the query count test.")
        for k, turn in enumerate(turns)
    )  # fmt: skip
    aggregates.aggregates_rebuild()


def _queries(call) -> list[dict]:
    with CaptureQueriesContext(connection) as captured:
        call()
    return captured.captured_queries


def test_the_dashboard_queries_do_not_grow_with_the_judgements(
    ready_repository, contractor, reviewer, project, client, admin_user
):
    task = _new_submitted(ready_repository, contractor, project, seed=4)
    decide(task, reviewer=reviewer)
    task.refresh_from_db()
    client.force_login(admin_user)

    def pages() -> list[int]:
        counts = []
        for url, query in (
            (reverse("reviews:dashboard"), {}),
            (reverse("reviews:dashboard"), {"project": project.pk}),
            (reverse("api-dashboard"), {"project": project.pk}),
        ):
            found = _queries(lambda: client.get(url, query))  # noqa: B023 - called at once
            counts.append(len(found))
        return counts

    _add_turns(task, 3)
    few, few_pages = _queries(lambda: dashboard.dashboard(samples=5)), pages()
    _add_turns(task, 120)
    many, many_pages = _queries(lambda: dashboard.dashboard(samples=5)), pages()
    assert dashboard.dashboard(samples=5).judged_turns == 124
    assert len(few) == len(many)
    assert few_pages == many_pages
    # The dashboard's figures read the aggregates, never the judgements.
    assert not [q for q in many if "tasks_judgement" in q["sql"]]
