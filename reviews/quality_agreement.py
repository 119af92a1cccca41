"""Agreement between two contractors who judged the same turn (issue 18), for the dashboard
and the API: per project (or overall), per contractor and per reviewer.

A pair is a submitted overlap judging task (not gold) with the turn's final judgement, the
one of the round the reviewer accepted. The judging task stores its judgement as the second
contractor saw it, so a swapped one is mapped back to the turn's slots in SQL. Every count
table comes from a GROUP BY (rows per cell and group, never per pair); reviews.quality_stats
turns the tables into figures with bootstrap intervals.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.db.models import (
    Case,
    F,
    FilteredRelation,
    IntegerField,
    Q,
    QuerySet,
    Sum,
    When,
)
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast

from marlin.database import is_postgresql
from reviews import quality_stats
from reviews.models import AgreementCount, JudgingTask, Review
from reviews.quality_stats import Interval
from tasks.models import Project, Task

# Intervals are drawn from a generator seeded per row, so a page shows the same interval on
# every load and one contractor's new pair does not move everyone else's.
SEED = 18
# Resamples per interval: the project's figures get the full count; each contractor's and
# reviewer's row gets fewer, because the resampling is the section's main cost (about 1,300
# intervals at 200 contractors) and a screening figure needs no third decimal.
ROW_SAMPLES = 200
# Cached rows are keyed by their content; the timeout only bounds the cache's size.
ROW_CACHE_SECONDS = 7 * 24 * 3600
OVERALL, CONTRACTOR, REVIEWER = 0, 1, 2


# --- Count tables -------------------------------------------------------------------------


@dataclass
class Tables:
    """One group's count tables, first rater in rows, second in columns, both in the
    turn's own slots: the 7x7 preference table, and per axis the 5x5 score table (each
    pair gives two units: the candidate in slot A and the one in slot B)."""

    preference: np.ndarray = field(default_factory=lambda: np.zeros((7, 7), dtype=np.int64))
    scores: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def pairs(self) -> int:
        return int(self.preference.sum())

    def score_table(self, axis: str) -> np.ndarray:
        if axis not in self.scores:
            self.scores[axis] = np.zeros((5, 5), dtype=np.int64)
        return self.scores[axis]

    def add(self, other: Tables) -> None:
        self.preference += other.preference
        for axis, table in other.scores.items():
            self.score_table(axis)[...] += table


@dataclass
class AgreementTables:
    overall: Tables
    # user id -> tables: a contractor's pairs are those where they were either rater.
    by_contractor: dict[int, Tables]
    # user id -> tables of the pairs whose turn that reviewer accepted.
    by_reviewer: dict[int, Tables]
    axes: list[str]


def agreement_pairs(project: Project | None = None) -> QuerySet[JudgingTask]:
    """Overlap judging tasks that make a pair: submitted, not gold, on a turn of an accepted
    task, by someone other than the turn's own contractor, joined to the turn's final
    judgement (`original`) and to the review that accepted it (`acceptance`)."""
    pairs = (
        JudgingTask.objects.filter(
            status=JudgingTask.Status.SUBMITTED,
            gold__isnull=True,
            turn__task__status=Task.Status.ACCEPTED,
        )
        .exclude(contractor=F("turn__task__contractor"))
        .annotate(
            original=FilteredRelation(
                "turn__judgements",
                condition=Q(turn__judgements__round=F("turn__task__round")),
            ),
            acceptance=FilteredRelation(
                "turn__task__reviews",
                condition=Q(
                    turn__task__reviews__round=F("turn__task__round"),
                    turn__task__reviews__decision=Review.Decision.ACCEPT,
                ),
            ),
        )
        .filter(original__isnull=False)
    )
    if project is not None:
        pairs = pairs.filter(turn__task__project=project)
    return pairs


def _int(scores: str, slot: str, axis: str) -> Cast:
    # KT("a__b__c") would take the first part for the field, and "original__scores" is a
    # field reached through the filtered relation, so the transforms are spelled out.
    return Cast(KeyTextTransform(axis, KeyTransform(slot, scores)), IntegerField())


def _as_shown_to_turn(*, a, b) -> Case:
    """The judging task's value for the turn's slot, given its values for its own A and B
    (swapped: its A is the turn's B)."""
    return Case(When(swapped=True, then=b), default=a, output_field=IntegerField())


def _measures(axes: list[str]) -> dict[str, tuple]:
    """name -> (first rater's value, second rater's value in the turn's slots)."""
    measures: dict[str, tuple] = {
        "preference": (
            F("original__preference"),
            _as_shown_to_turn(a=F("preference"), b=-F("preference")),
        )
    }
    for axis in axes:
        for slot, other in (("A", "B"), ("B", "A")):
            measures[f"{slot}:{axis}"] = (
                _int("original__scores", slot, axis),
                _as_shown_to_turn(a=_int("scores", slot, axis), b=_int("scores", other, axis)),
            )  # fmt: skip
    return measures


_GROUPS = {
    # name -> the id the group is keyed by
    "reviewer": F("acceptance__reviewer_id"),
    "first": F("turn__task__contractor_id"),
    "second": F("contractor_id"),
}


def _grouped_rows(pairs: QuerySet, measures: list[tuple]) -> list[tuple]:
    """(grouping, group id, measure, first value, second value, count) rows, from one query.

    The ORM writes the pair rows (JSON key transforms and the swap mapping work on
    PostgreSQL and SQLite alike); the statement around them takes each measure and grouping
    from the same materialised rows and groups it, so the joins run once, not once per
    measure and grouping (33 queries of ~130 ms each at 10k pairs before).
    """
    columns: dict[str, object] = {f"g{i}": expr for i, expr in enumerate(_GROUPS.values())}
    for code, (first, second) in enumerate(measures):
        columns[f"x{code}"], columns[f"y{code}"] = first, second
    base, params = pairs.values(**columns).order_by().query.sql_with_params()
    # Only integers and fixed column names are written into the statement. An axis the
    # turn's project lacks is null, and so is a legacy turn's reviewer: left out.
    branch = (
        'SELECT {g} AS k, "g{g}" AS g, {m} AS m, "x{m}" AS x, "y{m}" AS y, COUNT(*) AS n '
        'FROM pair WHERE "g{g}" IS NOT NULL AND "x{m}" IS NOT NULL AND "y{m}" IS NOT NULL '
        'GROUP BY "g{g}", "x{m}", "y{m}"'
    )
    branches = [branch.format(g=g, m=m) for g in range(len(_GROUPS)) for m in range(len(measures))]
    sql = f"WITH pair AS MATERIALIZED ({base}) " + " UNION ALL ".join(branches)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _axes(project: Project | None) -> list[tuple[str, str]]:
    projects = [project] if project is not None else Project.objects.only("rubric_axes")
    found: dict[str, str] = {}
    for p in projects:
        for axis in p.rubric_axes:
            found.setdefault(axis["key"], axis["label"])
    return list(found.items())


def agreement_tables_from_scratch(
    *, project: Project | None = None, axes: list[str] | None = None
) -> AgreementTables:
    """The count tables of a project (None: every project) by reviewer and by contractor,
    from one grouped query over every pair (see _grouped_rows): the reference the kept
    counts (agreement_tables) are tested against."""
    axes = [key for key, _ in _axes(project)] if axes is None else axes
    measures = _measures(axes)
    rows = _grouped_rows(agreement_pairs(project), list(measures.values()))
    return _tables_from_rows(rows, list(measures), axes)


def agreement_tables(
    *, project: Project | None = None, axes: list[str] | None = None
) -> AgreementTables:
    """The same tables from the counts judging_task_submit keeps (AgreementCount): rows per
    cell and person, whatever the number of pairs. Where the counts are not kept (SQLite,
    see reviews.aggregates), from scratch."""
    if not is_postgresql():
        return agreement_tables_from_scratch(project=project, axes=axes)
    axes = [key for key, _ in _axes(project)] if axes is None else axes
    names = list(_measures(axes))
    index = {name: m for m, name in enumerate(names)}
    counts = AgreementCount.objects.filter(measure__in=names)
    if project is not None:
        counts = counts.filter(project=project)
    rows = [
        (k, g, index[measure], x, y, n)
        for k, g, measure, x, y, n in counts.values_list(
            "grouping", "group_id", "measure", "x", "y"
        )
        .annotate(total=Sum("n"))
        .order_by()
    ]
    return _tables_from_rows(rows, names, axes)


def _count_rows(pairs: QuerySet[JudgingTask], project: Project) -> list[tuple]:
    """(project, grouping, person, measure name, x, y, n) of `pairs`, in key order."""
    measures = _measures([key for key, _ in _axes(project)])
    names = list(measures)
    rows = _grouped_rows(pairs, list(measures.values()))
    return sorted((project.pk, k, g, names[m], x, y, n) for k, g, m, x, y, n in rows)


def _counts_add(rows: list[tuple]) -> None:
    if not rows:
        return
    table = connection.ops.quote_name(AgreementCount._meta.db_table)
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (project_id, grouping, group_id, measure, x, y, n) "  # noqa: S608 - a model's table
            f"VALUES {values} ON CONFLICT (project_id, grouping, group_id, measure, x, y) "
            f"DO UPDATE SET n = {table}.n + EXCLUDED.n",
            [value for row in rows for value in row],
        )


def agreement_counts_add(*, judging_task: JudgingTask) -> None:
    """Add a just submitted judging task's pair to the kept counts (nothing for gold, or a
    task that makes no pair). Called by judging_task_submit in its transaction; rows are
    added with n = n + EXCLUDED.n in key order, so concurrent submits lose nothing and
    cannot deadlock."""
    if not is_postgresql():
        return
    pairs = agreement_pairs().filter(pk=judging_task.pk)
    _counts_add(_count_rows(pairs, judging_task.project))


def agreement_counts_rebuild() -> None:
    """Recompute the kept counts from every pair (reviews.aggregates.aggregates_rebuild)."""
    if not is_postgresql():
        return
    AgreementCount.objects.all().delete()
    for project in Project.objects.all():
        _counts_add(_count_rows(agreement_pairs(project), project))


def _tables_from_rows(rows: list[tuple], names: list[str], axes: list[str]) -> AgreementTables:
    """AgreementTables from (grouping, person, measure index, x, y, n) rows."""
    groupings = list(_GROUPS)
    by: dict[str, dict[int, Tables]] = {group: defaultdict(Tables) for group in groupings}
    data = np.array(rows, dtype=np.int64).reshape(-1, 6)
    for k, group in enumerate(groupings):
        for m, name in enumerate(names):
            chosen = data[(data[:, 0] == k) & (data[:, 2] == m)]
            ids, slot = np.unique(chosen[:, 1], return_inverse=True)
            # Row and column of each value: -3..3 for the preference, 1..5 for a score.
            low, size = (-3, 7) if m == 0 else (1, 5)
            x, y = chosen[:, 3] - low, chosen[:, 4] - low
            valid = (x >= 0) & (x < size) & (y >= 0) & (y < size)
            stacked = np.zeros((ids.size, size, size), dtype=np.int64)
            np.add.at(stacked, (slot[valid], x[valid], y[valid]), chosen[valid, 5])
            for i, group_id in enumerate(ids.tolist()):
                tables = by[group][group_id]
                if m == 0:
                    tables.preference = stacked[i]
                else:  # slot A and slot B add up in the axis' table
                    tables.score_table(name.split(":", 1)[1])[...] += stacked[i]
    by_contractor: dict[int, Tables] = defaultdict(Tables)
    for group in ("first", "second"):
        for user_id, tables in by[group].items():
            by_contractor[user_id].add(tables)
    # Every pair's turn was accepted by exactly one review: the reviewers' tables add up to
    # the whole.
    overall = Tables()
    for tables in by["reviewer"].values():
        overall.add(tables)
    return AgreementTables(
        overall=overall,
        by_contractor=dict(by_contractor),
        by_reviewer=dict(by["reviewer"]),
        axes=axes,
    )


# --- Figures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AxisAlpha:
    key: str
    label: str
    alpha: Interval


@dataclass(frozen=True)
class AgreementRow:
    name: str
    pairs: int
    direction: Interval
    kappa: Interval
    axes: list[AxisAlpha]

    @property
    def cells(self) -> list[tuple[str, Interval]]:
        """(kind, figure) in the section's column order; kind "share" shows as a percent."""
        return [("share", self.direction), ("kappa", self.kappa)] + [
            ("alpha", axis.alpha) for axis in self.axes
        ]


@dataclass(frozen=True)
class Agreement:
    overall: AgreementRow
    contractors: list[AgreementRow]
    reviewers: list[AgreementRow]
    # (key, label) of every rubric axis shown
    axes: list[tuple[str, str]]
    level: float
    samples: int
    row_samples: int

    @property
    def pairs(self) -> int:
        return self.overall.pairs

    @property
    def groups(self) -> list[tuple[str, str, list[AgreementRow]]]:
        """(kind, heading, rows) of the per-person tables, for the template's one loop."""
        return [
            ("contractor", "Per contractor (pairs where they were either rater)",
             self.contractors),
            ("reviewer", "Per reviewer (pairs whose turn they accepted)", self.reviewers),
        ]  # fmt: skip


def _row(
    name: str, tables: Tables, axes: list[tuple[str, str]], *, rng, samples: int, level: float
) -> AgreementRow:
    options = {"rng": rng, "samples": samples, "level": level}
    empty = np.zeros((5, 5), dtype=np.int64)
    return AgreementRow(
        name=name,
        pairs=tables.pairs,
        direction=quality_stats.direction_agreement(tables.preference, **options),
        kappa=quality_stats.weighted_kappa(tables.preference, **options),
        axes=[
            AxisAlpha(key, label, quality_stats.krippendorff_alpha(tables.scores.get(key, empty),
                                                                   **options))
            for key, label in axes
        ],
    )  # fmt: skip


# Part of every cached row's key: change it when the figures of the same tables change.
_ROW_VERSION = 1


def _row_key(seed: list[int], name: str, tables: Tables, axes, samples: int, level: float) -> str:
    """A row's figures are a function of its tables, name, axes, resamples, level and seed
    alone, so the row is cached under a digest of them: a contractor with no new pair since
    the last page is not resampled again, and a changed table is a new key (never stale)."""
    digest = hashlib.sha256(repr((_ROW_VERSION, seed, name, axes, samples, level)).encode())
    digest.update(tables.preference.tobytes())
    for axis in sorted(tables.scores):
        digest.update(axis.encode() + b"\0" + tables.scores[axis].tobytes())
    return f"agreement-row:{digest.hexdigest()}"


def _cached_rows(
    specs: list[tuple[list[int], str, Tables]], axes, *, samples: int, level: float
) -> list[AgreementRow]:
    """_row for each (seed, name, tables), from the cache where it is there (one round trip),
    computed and stored where not."""
    keys = [_row_key(seed, name, tables, axes, samples, level) for seed, name, tables in specs]
    found = cache.get_many(keys)
    missing = {}
    for key, (seed, name, tables) in zip(keys, specs, strict=True):
        if key not in found:
            missing[key] = _row(
                name, tables, axes, rng=np.random.default_rng(seed), samples=samples, level=level
            )
    cache.set_many(missing, timeout=ROW_CACHE_SECONDS)
    return [found.get(key) or missing[key] for key in keys]


def _rows(kind: int, tables: dict[int, Tables], axes, *, samples: int, level: float):
    names = dict(get_user_model().objects.filter(pk__in=tables).values_list("pk", "username"))
    specs = [
        ([SEED, kind, user_id], names.get(user_id, f"user {user_id}"), table)
        for user_id, table in tables.items()
    ]
    rows = _cached_rows(specs, axes, samples=samples, level=level)
    return sorted(rows, key=lambda row: row.name)


def agreement(
    *,
    project: Project | None = None,
    samples: int = quality_stats.DEFAULT_SAMPLES,
    row_samples: int = ROW_SAMPLES,
    level: float = quality_stats.DEFAULT_LEVEL,
) -> Agreement:
    """The dashboard's agreement section: direction agreement, quadratic-weighted kappa on
    the 7-point preference and interval Krippendorff's alpha per rubric axis, each with a
    bootstrap interval, for the project (None: every project), per contractor and per
    reviewer."""
    axes = _axes(project)
    tables = agreement_tables(project=project, axes=[key for key, _ in axes])
    per_row = {"samples": row_samples, "level": level}
    return Agreement(
        overall=_cached_rows(
            [([SEED, OVERALL, project.pk if project else 0],
              project.name if project else "All projects", tables.overall)],
            axes, samples=samples, level=level,
        )[0],
        contractors=_rows(CONTRACTOR, tables.by_contractor, axes, **per_row),
        reviewers=_rows(REVIEWER, tables.by_reviewer, axes, **per_row),
        axes=axes,
        level=level,
        samples=samples,
        row_samples=row_samples,
    )  # fmt: skip


def agreement_data(section: Agreement) -> dict:
    """The section as plain JSON for the API (intervals as {estimate, low, high, n, reason})."""
    data = asdict(section)
    data["axes"] = [{"key": key, "label": label} for key, label in section.axes]
    data["pairs"] = section.pairs
    return data
