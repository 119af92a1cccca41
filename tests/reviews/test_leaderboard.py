"""The per-project leaderboard: strengths of every model of the pool with intervals, the
pairwise win matrix, the per-axis boards, on the page and in the API, at a flat query cost."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from reviews import aggregates, leaderboard
from tasks import services
from tasks.models import Candidate, Judgement, ProjectEndpoint, Task, Turn
from tests.factories import ModelEndpointFactory, ProjectFactory
from tests.tasks.helpers import create_task, decide, generate_all

SECURITY = "security"


def _scores(project, by_slot: dict[str, int], flipped: dict[str, int]) -> dict:
    """Every axis scored as `by_slot`, except SECURITY, scored as `flipped`."""
    return {
        slot: {axis: (flipped if axis == SECURITY else by_slot)[slot] for axis in project.axis_keys}
        for slot in ("A", "B")
    }


def _draw_only(project, pair: tuple[str, str]) -> None:
    """Retire every other pool row, so the next task's pair is `pair` (drawn by the service)."""
    project.pool.update(is_enabled=False)
    project.pool.filter(endpoint__name__in=pair).update(is_enabled=True)


def _judged(*, project, pair, winner, repository, contractor, reviewer, security_to_loser=False):
    """An accepted task on `pair` whose one turn prefers `winner` (None: a tie). With
    `security_to_loser`, the loser scores higher on the security axis than the winner."""
    _draw_only(project, pair)
    task = generate_all(create_task(contractor=contractor, project=project, repository=repository))
    slot_of = dict(Candidate.objects.filter(turn__task=task).values_list("endpoint__name", "slot"))
    if winner is None:
        preference, by_slot = 0, {"A": 3, "B": 3}
    elif slot_of[winner] == "A":
        preference, by_slot = -2, {"A": 5, "B": 2}
    else:
        preference, by_slot = 2, {"A": 2, "B": 5}
    flipped = {"A": by_slot["B"], "B": by_slot["A"]} if security_to_loser else by_slot
    task = services.task_submit(
        task=task,
        by=contractor,
        preference=preference,
        scores=_scores(project, by_slot, flipped),
        justification="Judged for the leaderboard test.",
        # The flipped axis contradicts the preference on purpose.
        confirm_warnings=True,
    )
    decide(task, reviewer=reviewer)
    return task


# ant beats bee 3-1 (but the loser of each of those four turns scores higher on security),
# ant beats cat 2-0 with a tie, bee beats cat 2-1.
TRIO_PLAN = (
    [(("ant", "bee"), "ant", True)] * 3
    + [(("ant", "bee"), "bee", True)]
    + [(("ant", "cat"), "ant", False)] * 2
    + [(("ant", "cat"), None, False)]
    + [(("bee", "cat"), "bee", False)] * 2
    + [(("bee", "cat"), "cat", False)]
)


@pytest.fixture
def trio(ready_repository, contractor, reviewer):
    project = ProjectFactory(
        name="Trio", endpoints=[ModelEndpointFactory(name=n) for n in ("ant", "bee", "cat")]
    )
    for pair, winner, flip in TRIO_PLAN:
        _judged(
            project=project, pair=pair, winner=winner, repository=ready_repository,
            contractor=contractor, reviewer=reviewer, security_to_loser=flip,
        )  # fmt: skip
    project.pool.update(is_enabled=True)
    return project


def _by_name(board: leaderboard.Leaderboard) -> dict[str, leaderboard.Row]:
    return {row.name: row for row in board.rows}


def _matrix(board: leaderboard.Leaderboard) -> dict[tuple[str, str], tuple[float, int] | None]:
    names = [row.name for row in board.rows]
    return {
        (line.row.name, names[k]): None if cell is None else (cell.win_rate, cell.comparisons)
        for line in board.matrix
        for k, cell in enumerate(line.cells)
    }


def test_a_three_model_pool_gets_its_win_matrix_order_and_intervals(trio):
    board = leaderboard.leaderboard(project=trio, samples=100)
    assert board.judged_turns == 10
    assert [row.name for row in board.rows] == ["ant", "bee", "cat"]
    assert [row.rank for row in board.rows] == [1, 2, 3]
    records = {r.name: (r.rating.wins, r.rating.losses, r.rating.ties) for r in board.rows}
    assert records == {"ant": (5, 1, 1), "bee": (3, 4, 0), "cat": (1, 4, 1)}
    matrix = _matrix(board)
    assert matrix[("ant", "bee")] == (0.75, 4) and matrix[("bee", "ant")] == (0.25, 4)
    # The tie counts half for each side.
    assert matrix[("ant", "cat")] == (pytest.approx(2.5 / 3), 3)
    assert matrix[("cat", "ant")] == (pytest.approx(0.5 / 3), 3)
    assert matrix[("bee", "cat")] == (pytest.approx(2 / 3), 3)
    assert all(matrix[(n, n)] is None for n in ("ant", "bee", "cat"))
    strengths = [row.rating.strength for row in board.rows]
    assert strengths[0] > strengths[1] > strengths[2]
    for row in board.rows:
        assert row.rating.low < row.rating.strength < row.rating.high
        assert not row.is_retired and row.in_pool


def _rows(project) -> list[leaderboard.Row]:
    return leaderboard.leaderboard(project=project, samples=50).rows


def test_a_model_is_provisional_below_the_threshold_of_comparisons(trio):
    # The default threshold (20) is above everyone's 6 or 7 comparisons.
    reasons = {r.name: r.rating.provisional_reason for r in _rows(trio)}
    assert reasons["cat"] == "6 comparisons, fewer than 20"
    with override_settings(MARLIN_LEADERBOARD_MIN_COMPARISONS=7):
        rows = {r.name: r for r in _rows(trio)}
    assert not rows["ant"].rating.is_provisional and not rows["bee"].rating.is_provisional
    assert rows["cat"].rating.provisional_reason == "6 comparisons, fewer than 7"


def test_a_retired_model_stays_listed_with_its_record(trio):
    trio.pool.filter(endpoint__name="cat").update(is_enabled=False)
    rows = {r.name: r for r in _rows(trio)}
    assert rows["cat"].is_retired and rows["cat"].in_pool
    assert (rows["cat"].rank, rows["cat"].rating.comparisons) == (3, 6)
    assert not rows["ant"].is_retired


def test_a_fourth_model_with_no_comparisons_is_listed_as_provisional(trio):
    ProjectEndpoint.objects.create(project=trio, endpoint=ModelEndpointFactory(name="dog"))
    with override_settings(MARLIN_LEADERBOARD_MIN_COMPARISONS=1):
        board = leaderboard.leaderboard(project=trio, samples=50)
    assert [row.name for row in board.rows] == ["ant", "bee", "cat", "dog"]
    dog = board.rows[-1]
    assert dog.rank is None and dog.rating.strength is None and dog.rating.comparisons == 0
    assert dog.rating.provisional_reason == "no comparisons yet"
    assert [row.rating.is_provisional for row in board.rows] == [False, False, False, True]
    # Dog never met anyone: its matrix row and column are empty.
    assert all(cell is None for cell in board.matrix[-1].cells)
    assert all(line.cells[-1] is None for line in board.matrix)


def test_a_model_that_answered_but_left_the_pool_is_still_listed(trio):
    trio.pool.filter(endpoint__name="cat").delete()
    rows = {r.name: r for r in _rows(trio)}
    assert not rows["cat"].in_pool and rows["cat"].rating.comparisons == 6


def test_the_security_board_follows_the_scores_not_the_preference(trio):
    board = leaderboard.leaderboard(project=trio, samples=50)
    axes = {axis.key: axis for axis in board.axes}
    assert list(axes) == trio.axis_keys
    security = [row.name for row, _ in axes[SECURITY].ranked(board.rows)]
    correctness = [row.name for row, _ in axes["correctness"].ranked(board.rows)]
    # On security bee beat ant 3-1, whatever was preferred.
    assert security[0] == "bee" and correctness == ["ant", "bee", "cat"]
    bee = board.rows[1]
    assert bee.name == "bee"
    security_record = axes[SECURITY].ratings[bee.endpoint_id]
    assert (security_record.wins, security_record.losses) == (5, 2)
    assert axes["correctness"].ratings[bee.endpoint_id].wins == 3
    table = {row.name: ratings for row, ratings in board.axis_table}
    assert table["bee"][trio.axis_keys.index(SECURITY)] == axes[SECURITY].ratings[bee.endpoint_id]


def _pool_judged(plan, *, repository, contractor, reviewer, names):
    project = ProjectFactory(endpoints=[ModelEndpointFactory(name=n) for n in names])
    for pair, winner in plan:
        _judged(
            project=project, pair=pair, winner=winner, repository=repository,
            contractor=contractor, reviewer=reviewer,
        )  # fmt: skip
    project.pool.update(is_enabled=True)
    return project


@override_settings(MARLIN_LEADERBOARD_MIN_COMPARISONS=1)
def test_models_never_linked_to_the_main_group_are_provisional(
    ready_repository, contractor, reviewer
):
    plan = [(("ant", "bee"), "ant")] * 2 + [(("ant", "bee"), "bee")]
    plan += [(("cat", "dog"), "cat"), (("cat", "dog"), "dog")]
    project = _pool_judged(
        plan, repository=ready_repository, contractor=contractor, reviewer=reviewer,
        names=("ant", "bee", "cat", "dog"),
    )  # fmt: skip
    rows = {r.name: r for r in _rows(project)}
    # ant and bee met 3 times, cat and dog twice, and never the other two: cat and dog's
    # strengths are centred on their own and say nothing against ant's or bee's.
    assert not rows["ant"].rating.is_provisional and not rows["bee"].rating.is_provisional
    for name in ("cat", "dog"):
        assert rows[name].rating.provisional_reason.startswith("not compared with the main group")


@override_settings(MARLIN_LEADERBOARD_MIN_COMPARISONS=1)
def test_an_interval_no_resample_can_move_is_provisional(ready_repository, contractor, reviewer):
    project = _pool_judged(
        [(("ant", "bee"), "ant")] * 2, repository=ready_repository, contractor=contractor,
        reviewer=reviewer, names=("ant", "bee"),
    )  # fmt: skip
    ant, bee = _rows(project)
    # Every resample of "ant won both" is "ant won both": a zero-width interval.
    assert ant.rating.low == ant.rating.high == ant.rating.strength
    assert (
        ant.rating.provisional_reason == "interval undefined: every resample gives the same record"
    )
    assert bee.rating.is_provisional


def _accepted_on(project, pair, *, repository, contractor, reviewer) -> Task:
    return _judged(
        project=project, pair=pair, winner=pair[0], repository=repository,
        contractor=contractor, reviewer=reviewer,
    )  # fmt: skip


def _add_turns(task: Task, outcomes: list[tuple[str, str, int, dict]]) -> None:
    """More judged turns of an accepted task, written directly (the service path is slow for
    hundreds): (name in slot A, name in slot B, preference, scores) each."""
    endpoints = {e.name: e for e in (task.first_endpoint, task.second_endpoint)}
    first = task.turns.count() + 1
    turns = Turn.objects.bulk_create(
        Turn(task=task, number=first + k, prompt="And the next case.") for k in range(len(outcomes))
    )
    Candidate.objects.bulk_create(
        Candidate(turn=turn, slot=slot, endpoint=endpoints[name], status="SUCCEEDED")
        for turn, (a, b, _, _) in zip(turns, outcomes, strict=True)
        for slot, name in (("A", a), ("B", b))
    )
    Judgement.objects.bulk_create(
        Judgement(turn=turn, round=task.round, preference=preference, scores=scores,
                  justification="Written for the leaderboard test.")
        for turn, (_, _, preference, scores) in zip(turns, outcomes, strict=True)
    )  # fmt: skip
    # Written behind review_decide's back: the aggregates are rebuilt, as
    # `manage.py dashboard_aggregates_rebuild` would after such an edit.
    aggregates.aggregates_rebuild()


@pytest.fixture
def quartet(ready_repository, contractor, reviewer):
    names = ("ant", "bee", "cat", "dog")
    project = ProjectFactory(
        name="Quartet", endpoints=[ModelEndpointFactory(name=n) for n in names]
    )
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    tasks = {
        pair: _accepted_on(
            project, pair, repository=ready_repository, contractor=contractor, reviewer=reviewer
        )
        for pair in pairs
    }
    project.pool.update(is_enabled=True)
    return project, tasks


def test_a_four_model_pool_counts_each_pair_from_either_slot(quartet):
    project, tasks = quartet
    even = {"A": dict.fromkeys(project.axis_keys, 3), "B": dict.fromkeys(project.axis_keys, 3)}
    # Each service-made turn was a win for the pair's first name; these add, with the names
    # on either side: dog beats cat twice from slot B and once from slot A, and ties once.
    _add_turns(
        tasks[("cat", "dog")],
        [("cat", "dog", 3, even), ("cat", "dog", 1, even), ("dog", "cat", -1, even),
         ("cat", "dog", 0, even)],
    )  # fmt: skip
    # bee beats ant from slot B once, and ant beats bee from slot B once.
    _add_turns(tasks[("ant", "bee")], [("ant", "bee", 2, even), ("bee", "ant", 2, even)])
    board = leaderboard.leaderboard(project=project, samples=50)
    matrix = _matrix(board)
    assert matrix[("dog", "cat")] == (pytest.approx(3.5 / 5), 5)
    assert matrix[("cat", "dog")] == (pytest.approx(1.5 / 5), 5)
    assert matrix[("ant", "bee")] == (pytest.approx(2 / 3), 3)
    for pair in [("ant", "cat"), ("ant", "dog"), ("bee", "cat"), ("bee", "dog")]:
        assert matrix[pair] == (1.0, 1) and matrix[pair[::-1]] == (0.0, 1)
    assert board.judged_turns == 12
    assert [row.name for row in board.rows][0] == "ant"
    # Even scores on every axis: no axis board has a decisive comparison among the added.
    security = next(axis for axis in board.axes if axis.key == SECURITY)
    dog = security.ratings[_by_name(board)["dog"].endpoint_id]
    assert (dog.wins, dog.losses, dog.ties) == (0, 3, 4)


def test_an_axis_missing_from_the_scores_is_not_counted_on_that_axis(quartet):
    project, tasks = quartet
    partial = {"A": {"correctness": 5}, "B": {"correctness": 1}}
    _add_turns(tasks[("cat", "dog")], [("dog", "cat", 1, partial)])
    board = leaderboard.leaderboard(project=project, samples=20)
    by_axis = {axis.key: axis for axis in board.axes}
    dog = _by_name(board)["dog"].endpoint_id
    # Overall: cat won from slot B. Correctness: dog (slot A) scored 5 to 1. Security: unscored.
    assert _by_name(board)["dog"].rating.losses == 4
    assert by_axis["correctness"].ratings[dog].wins == 1
    assert by_axis[SECURITY].ratings[dog].comparisons == 3


def _captured(project) -> list[dict]:
    with CaptureQueriesContext(connection) as queries:
        leaderboard.leaderboard(project=project, samples=20)
    return queries.captured_queries


def _judgements(n: int, project) -> list[tuple[str, str, int, dict]]:
    scores = {"A": dict.fromkeys(project.axis_keys, 4), "B": dict.fromkeys(project.axis_keys, 2)}
    return [("ant", "bee", (k % 7) - 3, scores) for k in range(n)]


def _page_queries(client, project) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("reviews:dashboard"), {"project": project.pk}).status_code == 200
    return len(queries.captured_queries)


def test_the_queries_do_not_grow_with_the_judgements(quartet, client, admin_user):
    project, tasks = quartet
    client.force_login(admin_user)
    _add_turns(tasks[("ant", "bee")], _judgements(4, project))
    few, page_few = _captured(project), _page_queries(client, project)
    assert leaderboard.leaderboard(project=project, samples=5).judged_turns == 10
    _add_turns(tasks[("ant", "bee")], _judgements(190, project))
    many, page_many = _captured(project), _page_queries(client, project)
    assert leaderboard.leaderboard(project=project, samples=5).judged_turns == 200
    assert len(few) == len(many) <= 3
    # The board reads the pair counts (one query, every board at once), never the judgements.
    assert len([q for q in many if "tasks_pairoutcomecount" in q["sql"]]) == 1
    assert not [q for q in many if "tasks_judgement" in q["sql"]]
    # The whole dashboard page, leaderboard included, costs the same too.
    assert page_few == page_many


def test_the_page_shows_the_leaderboard_with_names_escaped(client, trio, admin_user):
    hostile = ModelEndpointFactory(name='<script>alert("x")</script>')
    ProjectEndpoint.objects.create(project=trio, endpoint=hostile)
    client.force_login(admin_user)
    html = client.get(reverse("reviews:dashboard"), {"project": trio.pk}).content.decode()
    section = html.split('id="leaderboard-section"')[1].split("</section>")[0]
    # Four models in each of the three tables: ranks, win matrix, axes.
    assert section.count('<tr data-endpoint="') == 12
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in section
    assert "<script>alert" not in html
    assert "no comparisons yet" in section and "provisional" in section
    matrix = section.split('id="win-matrix"')[1]
    ant_line = matrix.split('<th scope="row">ant</th>')[1].split("</tr>")[0]
    # Against itself: empty; against bee: 3 wins in 4.
    assert ant_line.startswith('<td class="empty"></td><td data-comparisons="4">75% (4)</td>')
    assert 'id="axis-strengths"' in section
    # Without a project there is no pool to rank: only a hint.
    overall = client.get(reverse("reviews:dashboard")).content.decode()
    assert 'id="leaderboard"' not in overall and 'id="leaderboard-hint"' in overall


def test_the_page_marks_retired_models(client, trio, admin_user):
    trio.pool.filter(endpoint__name="cat").update(is_enabled=False)
    client.force_login(admin_user)
    html = client.get(reverse("reviews:dashboard"), {"project": trio.pk}).content.decode()
    cat = trio.pool.get(endpoint__name="cat").endpoint_id
    row = html.split(f'<tr data-endpoint="{cat}"')[1].split("</tr>")[0]
    assert "retired-badge" in row
    ant = trio.pool.get(endpoint__name="ant").endpoint_id
    assert "retired-badge" not in html.split(f'<tr data-endpoint="{ant}"')[1].split("</tr>")[0]


def test_the_api_returns_the_leaderboard_to_admins_only(trio, admin_user, contractor, reviewer):
    api = APIClient()
    api.force_authenticate(admin_user)
    data = api.get(reverse("api-dashboard"), {"project": trio.pk}).json()["leaderboard"]
    assert [m["name"] for m in data["models"]] == ["ant", "bee", "cat"]
    ant = data["models"][0]
    assert (ant["rank"], ant["comparisons"], ant["wins"], ant["retired"]) == (1, 7, 5, False)
    assert ant["low"] <= ant["strength"] <= ant["high"] and ant["provisional"] is True
    ids = {m["name"]: m["endpoint"] for m in data["models"]}
    ant_row = next(line for line in data["win_matrix"] if line["endpoint"] == ids["ant"])
    against_bee = next(c for c in ant_row["against"] if c["endpoint"] == ids["bee"])
    assert (against_bee["win_rate"], against_bee["comparisons"]) == (0.75, 4)
    security = next(axis for axis in data["axes"] if axis["key"] == SECURITY)
    assert security["models"][0]["name"] == "bee"
    assert api.get(reverse("api-dashboard")).json()["leaderboard"] is None
    for user in (contractor, reviewer):
        api.force_authenticate(user)
        refused = api.get(reverse("api-dashboard"), {"project": trio.pk})
        assert refused.status_code == 403 and "leaderboard" not in refused.json()


def test_the_schema_documents_the_leaderboard(client, admin_user):
    client.force_login(admin_user)
    schema = json.loads(
        client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").content
    )
    ok = schema["paths"]["/api/dashboard/"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/Dashboard")
    board = schema["components"]["schemas"]["Leaderboard"]["properties"]
    assert {"models", "win_matrix", "axes", "min_comparisons"} <= set(board)
    model = schema["components"]["schemas"]["LeaderboardModel"]["properties"]
    assert {"strength", "low", "high", "provisional", "retired"} <= set(model)
