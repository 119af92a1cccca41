"""Agreement tables and figures from the database (issue 18): pairs of an accepted turn's
final judgement and a second contractor's judging task, swapped slots mapped back in SQL,
grouped per project, contractor and reviewer; and the dashboard's agreement section."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext

from marlin import roles
from reviews import aggregates, quality_stats
from reviews.models import GoldTurn, JudgingTask
from reviews.quality_agreement import agreement, agreement_data, agreement_tables
from tasks import services
from tasks.models import Task, Turn
from tests.factories import ProjectFactory, UserFactory
from tests.tasks.helpers import create_task, decide, generate_all

JUSTIFICATION = "Judged for the agreement test, slot by slot."


def _scores(project, a: int, b: int) -> dict:
    return {"A": dict.fromkeys(project.axis_keys, a), "B": dict.fromkeys(project.axis_keys, b)}


def _accepted(*, project, repository, contractor, reviewer, preference, a, b, earlier=None):
    """An accepted one-turn task judged (preference, every axis a for slot A and b for B).
    With `earlier` = (preference, a, b), round 1 is judged so, bounced, and round 2 as asked."""
    task = generate_all(create_task(contractor=contractor, project=project, repository=repository))
    rounds = [earlier] if earlier else []
    for pref, score_a, score_b in [*rounds, (preference, a, b)]:
        if task.status == Task.Status.BOUNCED:
            services.task_revise(task=task, by=contractor)
            task.refresh_from_db()
        task = services.task_submit(
            task=task, by=contractor, preference=pref, scores=_scores(project, score_a, score_b),
            justification=JUSTIFICATION, confirm_warnings=True,
        )  # fmt: skip
        if (pref, score_a, score_b) != (preference, a, b):
            decide(task, reviewer=reviewer, decision="BOUNCE", feedback="Look again.")
            task.refresh_from_db()
    decide(task, reviewer=reviewer)
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED
    return task


def _judged_again(task, *, by, swapped, preference, a, b, **fields) -> JudgingTask:
    """A submitted judging task as the second contractor saw it (their A is the turn's B
    when swapped)."""
    defaults = {"status": JudgingTask.Status.SUBMITTED, "preference": preference,
                "scores": _scores(task.project, a, b)}  # fmt: skip
    judging_task = JudgingTask.objects.create(
        project=task.project, turn=Turn.objects.get(task=task), contractor=by,
        swapped=swapped, **{**defaults, **fields},
    )  # fmt: skip
    # Submitted behind judging_task_submit's back: the kept counts are rebuilt, as
    # `manage.py dashboard_aggregates_rebuild` would after such an edit.
    aggregates.aggregates_rebuild()
    return judging_task


@pytest.fixture
def people(contractor, other_contractor, reviewer):
    return {
        "carol": contractor,
        "dave": other_contractor,
        "erin": UserFactory(username="erin", role=roles.CONTRACTOR),
        "rita": reviewer,
        "rex": UserFactory(username="rex", role=roles.REVIEWER),
    }


# The four pairs, in the turn's own slots (every axis scored alike):
#                first  second  reviewer  preferences  slot A scores  slot B scores
#  P1 (plain)    carol  dave    rita      -2, -1       4, 4           2, 3
#  P2 (swapped)  carol  dave    rita       0, -1       3, 3           3, 2     (round 2 final)
#  P3 (swapped)  dave   erin    rex        2,  3       2, 1           5, 5
#  P4 (plain)    dave   carol   rex        1, -1       3, 4           4, 3
FIRST_PREFERENCES, SECOND_PREFERENCES = [-2, 0, 2, 1], [-1, -1, 3, -1]
FIRST_SCORES, SECOND_SCORES = [4, 2, 3, 3, 2, 5, 3, 4], [4, 3, 3, 2, 1, 5, 4, 3]


@pytest.fixture
def pairs(people, project, ready_repository):
    p = people
    common = {"project": project, "repository": ready_repository}
    t1 = _accepted(**common, contractor=p["carol"], reviewer=p["rita"], preference=-2, a=4, b=2)
    # Round 1 said B much better; only the accepted round 2 counts.
    t2 = _accepted(**common, contractor=p["carol"], reviewer=p["rita"], preference=0, a=3, b=3,
                   earlier=(3, 1, 5))  # fmt: skip
    t3 = _accepted(**common, contractor=p["dave"], reviewer=p["rex"], preference=2, a=2, b=5)
    t4 = _accepted(**common, contractor=p["dave"], reviewer=p["rex"], preference=1, a=3, b=4)
    _judged_again(t1, by=p["dave"], swapped=False, preference=-1, a=4, b=3)
    # Dave saw the turn's B in his A: his "B slightly better" is the turn's A.
    _judged_again(t2, by=p["dave"], swapped=True, preference=1, a=2, b=3)
    _judged_again(t3, by=p["erin"], swapped=True, preference=-3, a=5, b=1)
    _judged_again(t4, by=p["carol"], swapped=False, preference=-1, a=4, b=3)

    # None of these make a pair.
    t5 = _accepted(**common, contractor=p["erin"], reviewer=p["rita"], preference=3, a=1, b=5)
    gold = GoldTurn.objects.create(turn=Turn.objects.get(task=t5), expected=1,
                                   created_by=p["rita"])  # fmt: skip
    _judged_again(t5, by=p["carol"], swapped=False, preference=-3, a=5, b=1, gold=gold)
    _judged_again(t5, by=p["erin"], swapped=False, preference=3, a=1, b=5)  # her own turn
    unaccepted = services.task_submit(
        task=generate_all(create_task(contractor=p["erin"], project=project, **{
            "repository": ready_repository})),
        by=p["erin"], preference=2, scores=_scores(project, 2, 4), justification=JUSTIFICATION,
        confirm_warnings=True,
    )  # fmt: skip
    _judged_again(unaccepted, by=p["carol"], swapped=False, preference=-3, a=5, b=1)
    return {"tasks": [t1, t2, t3, t4], "project": project}


def _cells(table: np.ndarray, values) -> dict[tuple[int, int], int]:
    return {
        (values[i], values[j]): int(table[i, j]) for i, j in zip(*np.nonzero(table), strict=True)
    }


def _preference_cells(tables) -> dict:
    return _cells(tables.preference, quality_stats.PREFERENCE_VALUES)


def test_the_tables_hold_exactly_the_four_pairs_in_the_turns_slots(pairs, people):
    tables = agreement_tables(project=pairs["project"])

    assert _preference_cells(tables.overall) == {(-2, -1): 1, (0, -1): 1, (2, 3): 1, (1, -1): 1}
    for axis in pairs["project"].axis_keys:
        assert _cells(tables.overall.scores[axis], quality_stats.SCORE_VALUES) == {
            (4, 4): 1, (2, 3): 1, (3, 3): 1, (3, 2): 1, (2, 1): 1, (5, 5): 1, (3, 4): 1,
            (4, 3): 1,
        }  # fmt: skip


def test_a_contractor_counts_the_pairs_where_they_were_either_rater(pairs, people):
    tables = agreement_tables(project=pairs["project"])
    by = {name: tables.by_contractor.get(people[name].pk) for name in ("carol", "dave", "erin")}

    assert _preference_cells(by["carol"]) == {(-2, -1): 1, (0, -1): 1, (1, -1): 1}
    assert by["dave"].pairs == 4
    assert _preference_cells(by["erin"]) == {(2, 3): 1}
    assert _cells(by["erin"].scores["security"], quality_stats.SCORE_VALUES) == {
        (2, 1): 1, (5, 5): 1,
    }  # fmt: skip


def test_a_reviewer_counts_the_pairs_whose_turn_they_accepted(pairs, people):
    tables = agreement_tables(project=pairs["project"])

    rita, rex = tables.by_reviewer[people["rita"].pk], tables.by_reviewer[people["rex"].pk]
    assert _preference_cells(rita) == {(-2, -1): 1, (0, -1): 1}
    assert _preference_cells(rex) == {(2, 3): 1, (1, -1): 1}
    assert set(tables.by_reviewer) == {people["rita"].pk, people["rex"].pk}


def test_the_figures_match_hand_computation(pairs):
    section = agreement(project=pairs["project"], samples=200)
    overall = section.overall

    assert overall.pairs == section.pairs == 4
    # Same direction in P1 (A, A) and P3 (B, B); P2 is tie/A and P4 B/A.
    assert overall.direction.estimate == pytest.approx(0.5)
    # Quadratic kappa = 1 - sum (x - y)^2 / (sum over all n^2 cross pairs / n):
    # observed 1 + 1 + 1 + 4 = 7; cross pairs 28 + 12 + 28 + 16 = 84, / 4 = 21.
    assert overall.kappa.estimate == pytest.approx(1 - 7 / 21)
    reference = krippendorff.alpha(
        reliability_data=np.array([FIRST_SCORES, SECOND_SCORES], dtype=float),
        level_of_measurement="interval",
    )
    assert [a.key for a in overall.axes] == pairs["project"].axis_keys
    for axis in overall.axes:
        assert axis.alpha.estimate == pytest.approx(reference)
        assert axis.alpha.n == 8
        assert axis.alpha.low <= axis.alpha.estimate <= axis.alpha.high


def test_rows_name_each_person_and_a_single_pair_has_no_figure(pairs):
    section = agreement(project=pairs["project"], samples=200)

    assert [(r.name, r.pairs) for r in section.contractors] == [
        ("carol", 3), ("dave", 4), ("erin", 1),
    ]  # fmt: skip
    carol, _, erin = section.contractors
    assert carol.direction.estimate == pytest.approx(1 / 3)
    assert erin.kappa == quality_stats.Interval(None, None, None, 1, quality_stats.TOO_FEW)
    assert [(r.name, r.pairs) for r in section.reviewers] == [("rex", 2), ("rita", 2)]


def test_the_overall_section_spans_projects_and_a_project_only_its_own(pairs, people):
    other = ProjectFactory(name="Other")
    task = _accepted(project=other, repository=pairs["tasks"][0].repository,
                     contractor=people["erin"], reviewer=people["rex"], preference=-1, a=4, b=3)  # fmt: skip
    _judged_again(task, by=people["carol"], swapped=False, preference=-1, a=4, b=3)

    assert agreement(project=pairs["project"], samples=50).pairs == 4
    assert agreement(project=other, samples=50).pairs == 1
    assert agreement(samples=50).pairs == 5


def test_the_query_count_does_not_grow_with_the_pairs(pairs, people, ready_repository):
    project = pairs["project"]
    with CaptureQueriesContext(connection) as before:
        agreement(project=project, samples=50)
    newcomer = UserFactory(username="fred", role=roles.CONTRACTOR)
    common = {"project": project, "repository": ready_repository, "reviewer": people["rex"]}
    taken = _accepted(**common, contractor=people["erin"], preference=-1, a=4, b=3)
    _judged_again(taken, by=newcomer, swapped=False, preference=None, a=0, b=0, scores=None,
                  status=JudgingTask.Status.TAKEN)  # fmt: skip
    judged = _accepted(**common, contractor=people["erin"], preference=-1, a=4, b=3)
    _judged_again(judged, by=newcomer, swapped=True, preference=1, a=3, b=4)
    with CaptureQueriesContext(connection) as after:
        section = agreement(project=project, samples=50)

    # The judging task still being judged is no pair; the submitted one is.
    assert section.pairs == 5
    assert ("fred", 1) in [(r.name, r.pairs) for r in section.contractors]
    assert len(after.captured_queries) == len(before.captured_queries)
    # One grouped query for every table, and the names of the contractors and reviewers.
    assert len(after.captured_queries) == 3


def test_the_same_data_gives_the_same_intervals(pairs):
    once = agreement(project=pairs["project"], samples=200)
    again = agreement(project=pairs["project"], samples=200)

    assert once == again


def test_the_api_data_is_plain_json(pairs):
    import json

    data = agreement_data(agreement(project=pairs["project"], samples=50))

    assert json.loads(json.dumps(data))["overall"]["kappa"]["estimate"] == pytest.approx(2 / 3)
    assert data["pairs"] == 4
    assert data["axes"][0] == {"key": "correctness", "label": "Correctness"}


# --- The dashboard's section ----------------------------------------------------------------


def test_the_section_shows_figures_intervals_and_pairs(pairs):
    html = render_to_string(
        "reviews/_agreement.html", {"agreement": agreement(project=pairs["project"], samples=200)}
    )

    assert 'id="agreement-section"' in html
    assert "4 pairs" in html
    assert "0.667" in html  # the overall kappa
    assert 'data-contractor="erin"' in html and "fewer than 2 pairs" in html
    assert 'data-reviewer="rita"' in html
    assert "agreement-empty" not in html


def test_the_section_says_when_there_are_no_pairs_yet(db, project):
    html = render_to_string("reviews/_agreement.html", {"agreement": agreement(project=project)})

    assert 'id="agreement-empty"' in html
    assert "No pairs yet" in html
    assert 'id="agreement-contractors"' not in html


def test_names_are_escaped(pairs, people):
    people["erin"].username = "<b>erin</b>"
    people["erin"].save()

    html = render_to_string(
        "reviews/_agreement.html", {"agreement": agreement(project=pairs["project"], samples=50)}
    )

    assert "&lt;b&gt;erin&lt;/b&gt;" in html and "<b>erin</b>" not in html
