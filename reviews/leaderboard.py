"""A project's leaderboard: Bradley-Terry strengths of every endpoint of its pool, the
pairwise win matrix, and the same strengths per rubric axis.

It reads what the dashboard reads (the final judgement of each judged turn of accepted
tasks) as counts per (endpoint in slot A, endpoint in slot B): how often A won, B won or
they tied, overall and on every axis. `leaderboard` takes them from the pair counts
review_decide keeps (tasks.PairOutcomeCount); `leaderboard_from_scratch` groups every
judgement instead and is the reference the counts are tested against. The rows are bounded
by the number of pairs, so the queries, the rows they return and the fit
(bradley_terry_counted takes each kind of comparison with its count) do not grow with the
number of judgements.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, F, FloatField, Q
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast
from django.db.models.lookups import Exact, GreaterThan, LessThan

from reviews import aggregates
from reviews.dashboard import final_judgements, strengths_cached, with_slots
from tasks.bradley_terry import Comparison, ModelStrength
from tasks.models import ModelEndpoint, PairOutcomeCount, Project

# A zero-width bootstrap interval says only that no resample could change the picture (two
# models, one of which won every game): it measures nothing.
_DEGENERATE_WIDTH = 1e-9


def min_comparisons() -> int:
    return settings.MARLIN_LEADERBOARD_MIN_COMPARISONS


@dataclass(frozen=True)
class Rating:
    """One endpoint's strength on one board (overall or one axis)."""

    strength: float | None  # None: no comparisons on this board
    low: float | None
    high: float | None
    comparisons: int
    wins: int
    losses: int
    ties: int
    provisional_reason: str  # "" when the figure can be trusted as far as statistics go

    @property
    def is_provisional(self) -> bool:
        return bool(self.provisional_reason)

    @property
    def win_rate(self) -> float | None:
        if not self.comparisons:
            return None
        return (self.wins + self.ties / 2) / self.comparisons


NO_COMPARISONS = Rating(
    strength=None,
    low=None,
    high=None,
    comparisons=0,
    wins=0,
    losses=0,
    ties=0,
    provisional_reason="no comparisons yet",
)


@dataclass(frozen=True)
class Row:
    endpoint_id: int
    name: str
    rank: int | None  # None for an endpoint with no comparisons yet
    rating: Rating
    is_retired: bool
    # False for an endpoint that answered judged turns but has no row in the pool.
    in_pool: bool


@dataclass(frozen=True)
class Cell:
    """The record of a row's endpoint against a column's endpoint."""

    wins: int
    losses: int
    ties: int

    @property
    def comparisons(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def win_rate(self) -> float:
        return (self.wins + self.ties / 2) / self.comparisons

    @property
    def percent(self) -> int:
        return round(100 * self.win_rate)


@dataclass(frozen=True)
class MatrixRow:
    row: Row
    cells: list[Cell | None]  # in the order of Leaderboard.rows; None: never met (or itself)


@dataclass(frozen=True)
class AxisBoard:
    key: str
    label: str
    ratings: dict[int, Rating]  # endpoint id -> rating on this axis

    def ranked(self, rows: list[Row]) -> list[tuple[Row, Rating]]:
        """The rows best first by this axis, endpoints without comparisons last."""
        rated = [(row, self.ratings[row.endpoint_id]) for row in rows]
        return sorted(rated, key=lambda pair: _order_key(pair[1], pair[0].name))


@dataclass
class Leaderboard:
    project: Project
    min_comparisons: int
    judged_turns: int
    rows: list[Row]
    matrix: list[MatrixRow]
    axes: list[AxisBoard] = field(default_factory=list)

    @property
    def axis_table(self) -> list[tuple[Row, list[Rating]]]:
        """Per row (overall order), its rating on each axis, for a model x axis table."""
        return [(row, [axis.ratings[row.endpoint_id] for axis in self.axes]) for row in self.rows]


@dataclass
class _Tally:
    """One board's counts: decisive[(i, j)] = turns i won against j; ties by sorted pair."""

    decisive: Counter[tuple[int, int]] = field(default_factory=Counter)
    ties: Counter[tuple[int, int]] = field(default_factory=Counter)

    def add(self, a: int, b: int, *, a_won: int, b_won: int, tied: int) -> None:
        self.decisive[(a, b)] += a_won
        self.decisive[(b, a)] += b_won
        self.ties[(min(a, b), max(a, b))] += tied

    def cell(self, i: int, j: int) -> Cell | None:
        found = Cell(
            wins=self.decisive[(i, j)],
            losses=self.decisive[(j, i)],
            ties=self.ties[(min(i, j), max(i, j))],
        )
        return found if i != j and found.comparisons else None

    def comparisons(self) -> Counter[Comparison]:
        """Each kind of comparison with how many judged turns made it."""
        found: Counter[Comparison] = Counter()
        for (i, j), n in self.decisive.items():
            found[Comparison(a=str(i), b=str(j), outcome=1.0)] += n
        for (i, j), n in self.ties.items():
            found[Comparison(a=str(i), b=str(j), outcome=0.5)] += n
        return found

    def total(self) -> int:
        return sum(self.decisive.values()) + sum(self.ties.values())


def _score(slot: str, axis: str):
    return Cast(KeyTextTransform(axis, KeyTransform(slot, "scores")), FloatField())


def _outcome_counts(project: Project, axes: list[str]) -> list[dict]:
    """Per (endpoint in A, endpoint in B), for board 0 (overall: a negative preference means
    A was preferred) and board k (axis k: the higher score wins; a turn without that axis
    scored is not counted on it): b<k>_a, b<k>_b, b<k>_t = A won, B won, tied. One query."""
    boards = [(Q(preference__lt=0), Q(preference__gt=0), Q(preference=0))]
    for axis in axes:
        a, b = _score("A", axis), _score("B", axis)
        boards.append((GreaterThan(a, b), LessThan(a, b), Exact(a, b)))
    counts = {}
    for index, (a_won, b_won, tied) in enumerate(boards):
        counts[f"b{index}_a"] = Count("pk", filter=a_won)
        counts[f"b{index}_b"] = Count("pk", filter=b_won)
        counts[f"b{index}_t"] = Count("pk", filter=tied)
    return list(
        with_slots(final_judgements(project))
        .values(ea=F("in_a__endpoint_id"), eb=F("in_b__endpoint_id"))
        .annotate(**counts)
        .order_by()
    )


def _tallies(rows: list[dict], boards: int) -> list[_Tally]:
    tallies = [_Tally() for _ in range(boards)]
    for row in rows:
        a, b = row["ea"], row["eb"]
        if a is None or b is None or a == b:
            continue
        for index, tally in enumerate(tallies):
            tally.add(
                a,
                b,
                a_won=row[f"b{index}_a"],
                b_won=row[f"b{index}_b"],
                tied=row[f"b{index}_t"],
            )
    return tallies


def _main_group(tally: _Tally) -> set[int]:
    """The endpoints linked by chains of comparisons to the most compared one: strengths
    are only comparable within such a group (tasks/bradley_terry.py centres each alone)."""
    neighbours: dict[int, set[int]] = {}
    games: Counter[int] = Counter()
    for pairs in (tally.decisive, tally.ties):
        for (i, j), n in pairs.items():
            if n:
                neighbours.setdefault(i, set()).add(j)
                neighbours.setdefault(j, set()).add(i)
                games[i] += n
                games[j] += n
    if not games:
        return set()
    start = max(games, key=lambda e: (games[e], -e))
    group, frontier = {start}, [start]
    while frontier:
        for other in neighbours[frontier.pop()] - group:
            group.add(other)
            frontier.append(other)
    return group


def _provisional_reason(strength: ModelStrength, *, in_main_group: bool, minimum: int) -> str:
    if not in_main_group:
        return "not compared with the main group: its strength is on a scale of its own"
    if not all(math.isfinite(x) for x in (strength.strength, strength.low, strength.high)):
        return "interval undefined"
    if strength.high - strength.low < _DEGENERATE_WIDTH:
        return "interval undefined: every resample gives the same record"
    if strength.games < minimum:
        return f"{strength.games} comparisons, fewer than {minimum}"
    return ""


def _ratings(tally: _Tally, *, samples: int, minimum: int) -> dict[int, Rating]:
    group = _main_group(tally)
    ratings = {}
    for strength in strengths_cached(tally.comparisons(), samples=samples):
        endpoint = int(strength.model)
        ratings[endpoint] = Rating(
            strength=strength.strength,
            low=strength.low,
            high=strength.high,
            comparisons=strength.games,
            wins=strength.wins,
            losses=strength.losses,
            ties=strength.ties,
            provisional_reason=_provisional_reason(
                strength, in_main_group=endpoint in group, minimum=minimum
            ),
        )
    return ratings


def _order_key(rating: Rating, name: str) -> tuple:
    if rating.strength is None:
        return (1, 0.0, name)
    return (0, -rating.strength, name)


def counted_outcome_counts(project: Project, axes: list[str]) -> list[dict]:
    """_outcome_counts' rows from the pair counts review_decide keeps (tasks.PairOutcomeCount):
    one row per (endpoint pair, board), not per judgement."""
    boards = {axis: index for index, axis in enumerate(["", *axes])}
    rows: dict[tuple[int, int], dict] = {}
    counts = PairOutcomeCount.objects.filter(project=project, axis__in=boards).values_list(
        "endpoint_a_id", "endpoint_b_id", "axis", "a_won", "b_won", "tied"
    )
    for ea, eb, axis, a_won, b_won, tied in counts:
        row = rows.setdefault(
            (ea, eb),
            {"ea": ea, "eb": eb}
            | {f"b{k}_{x}": 0 for k in range(len(boards)) for x in ("a", "b", "t")},
        )
        k = boards[axis]
        row[f"b{k}_a"], row[f"b{k}_b"], row[f"b{k}_t"] = a_won, b_won, tied
    return list(rows.values())


def leaderboard(*, project: Project, samples: int = 200) -> Leaderboard:
    """The leaderboard of `project`: every endpoint of its pool (retired ones too) and any
    other endpoint that answered one of its judged turns, best first.

    Three queries (the pool, the pair counts, the names of endpoints outside the pool)
    whatever the number of judgements. Where the counts are not kept (SQLite, see
    reviews.aggregates) the outcomes are grouped from every judgement instead.
    """
    counts = counted_outcome_counts if aggregates.aggregates_kept() else _outcome_counts
    return _leaderboard(project, counts, samples=samples)


def leaderboard_from_scratch(*, project: Project, samples: int = 200) -> Leaderboard:
    """The same board from every judgement (one grouped query, linear in them): the
    reference `leaderboard` is tested against."""
    return _leaderboard(project, _outcome_counts, samples=samples)


def _leaderboard(project: Project, outcome_counts, *, samples: int) -> Leaderboard:
    minimum = min_comparisons()
    axes = [(axis["key"], axis.get("label") or axis["key"]) for axis in project.rubric_axes]
    rows = outcome_counts(project, [key for key, _ in axes])
    # Board 0 is the overall preference, board k the k-th axis.
    tallies = _tallies(rows, 1 + len(axes))
    ratings = [_ratings(tally, samples=samples, minimum=minimum) for tally in tallies]
    pool = {
        entry.endpoint_id: (entry.endpoint.name, not entry.is_enabled)
        for entry in project.pool.select_related("endpoint")
    }
    answered = {e for row in rows for e in (row["ea"], row["eb"]) if e is not None}
    names = {pk: name for pk, (name, _) in pool.items()} | dict(
        ModelEndpoint.objects.filter(pk__in=answered - set(pool)).values_list("pk", "name")
    )
    overall = ratings[0]
    ordered = sorted(names, key=lambda pk: _order_key(overall.get(pk, NO_COMPARISONS), names[pk]))
    board_rows = []
    for position, pk in enumerate(ordered, start=1):
        rating = overall.get(pk, NO_COMPARISONS)
        board_rows.append(
            Row(
                endpoint_id=pk,
                name=names[pk],
                rank=position if rating.strength is not None else None,
                rating=rating,
                is_retired=pk in pool and pool[pk][1],
                in_pool=pk in pool,
            )
        )
    return Leaderboard(
        project=project,
        min_comparisons=minimum,
        judged_turns=tallies[0].total(),
        rows=board_rows,
        matrix=[
            MatrixRow(row=row, cells=[tallies[0].cell(row.endpoint_id, pk) for pk in ordered])
            for row in board_rows
        ],
        axes=[
            AxisBoard(
                key=key,
                label=label,
                ratings={pk: ratings[k].get(pk, NO_COMPARISONS) for pk in ordered},
            )
            for k, (key, label) in enumerate(axes, start=1)
        ],
    )


def _number(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _rating_data(rating: Rating) -> dict:
    return {
        "strength": _number(rating.strength),
        "low": _number(rating.low),
        "high": _number(rating.high),
        "comparisons": rating.comparisons,
        "wins": rating.wins,
        "losses": rating.losses,
        "ties": rating.ties,
        "win_rate": _number(rating.win_rate),
        "provisional": rating.is_provisional,
        "provisional_reason": rating.provisional_reason,
    }


def leaderboard_data(board: Leaderboard) -> dict:
    """The leaderboard as plain JSON, for the API."""
    return {
        "project": board.project.pk,
        "min_comparisons": board.min_comparisons,
        "judged_turns": board.judged_turns,
        "models": [
            {
                "endpoint": row.endpoint_id,
                "name": row.name,
                "rank": row.rank,
                "retired": row.is_retired,
                "in_pool": row.in_pool,
                **_rating_data(row.rating),
            }
            for row in board.rows
        ],
        "win_matrix": [
            {
                "endpoint": line.row.endpoint_id,
                "against": [
                    {
                        "endpoint": column.endpoint_id,
                        "win_rate": None if cell is None else round(cell.win_rate, 4),
                        "comparisons": 0 if cell is None else cell.comparisons,
                        "wins": 0 if cell is None else cell.wins,
                        "losses": 0 if cell is None else cell.losses,
                        "ties": 0 if cell is None else cell.ties,
                    }
                    for column, cell in zip(board.rows, line.cells, strict=True)
                    if column.endpoint_id != line.row.endpoint_id
                ],
            }
            for line in board.matrix
        ],
        "axes": [
            {
                "key": axis.key,
                "label": axis.label,
                "models": [
                    {"endpoint": row.endpoint_id, "name": row.name, **_rating_data(rating)}
                    for row, rating in axis.ranked(board.rows)
                ],
            }
            for axis in board.axes
        ],
    }
