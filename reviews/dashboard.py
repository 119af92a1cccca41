"""Quality dashboard figures, per project or overall.

Every figure reads the *final* judgement of each judged turn of accepted tasks (the round
the reviewer accepted), the same set a default export holds. `dashboard` reads them from the
aggregates review_decide keeps (reviews/aggregates.py), so a page reads rows per model,
contractor and axis, not per judgement; `dashboard_from_scratch` computes the same figures
from every judgement with grouped queries (linear in them: ~50 s at 1M judged turns), and
stays as the reference the aggregates are tested against.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, F, FilteredRelation, Q, QuerySet, Sum
from django.db.models.functions import Sign, TruncDate
from django.utils import timezone

from reviews import aggregates
from reviews.models import (
    CandidateCount,
    ContractorSlotCount,
    DayCount,
    DayFilled,
    ProjectDecisionCount,
    Review,
    ScoreCount,
    TaskSecondsCount,
)
from tasks.bradley_terry import Comparison, ModelStrength, bradley_terry_counted
from tasks.models import (
    CLOSED_STATES,
    Candidate,
    EvidenceRun,
    Judgement,
    ModelEndpoint,
    PairOutcomeCount,
    Project,
    Submission,
    Task,
)

THROUGHPUT_DAYS = 30


def final_judgements(project: Project | None) -> QuerySet[Judgement]:
    judgements = Judgement.objects.filter(
        turn__task__status=Task.Status.ACCEPTED, round=F("turn__task__round")
    )
    if project is not None:
        judgements = judgements.filter(turn__task__project=project)
    return judgements


def with_slots(judgements: QuerySet[Judgement]) -> QuerySet[Judgement]:
    """Join each judgement to its turn's candidate in slot A and in slot B (one join each,
    not a subquery per row: the difference at 100k judged turns is seconds)."""
    return judgements.annotate(
        in_a=FilteredRelation("turn__candidates", condition=Q(turn__candidates__slot="A")),
        in_b=FilteredRelation("turn__candidates", condition=Q(turn__candidates__slot="B")),
    )


def _endpoint_names() -> dict[int, str]:
    return dict(ModelEndpoint.objects.values_list("pk", "name"))


@dataclass
class PositionBias:
    a_wins: int = 0
    b_wins: int = 0
    ties: int = 0

    @property
    def decided(self) -> int:
        return self.a_wins + self.b_wins

    @property
    def a_share(self) -> float | None:
        """How often slot A wins among turns that were not ties (0.5: no bias)."""
        return self.a_wins / self.decided if self.decided else None


def chart_data(board: Dashboard) -> dict:
    """The figures the page's charts draw, as plain JSON."""
    return {
        "strengths": [
            {
                "model": s.model,
                "strength": round(s.strength, 4),
                "low": round(s.low, 4),
                "high": round(s.high, 4),
                "win_rate": round(s.win_rate, 4),
                "wins": s.wins,
                "losses": s.losses,
                "ties": s.ties,
            }
            for s in board.strengths
        ],
        "position_bias": {
            "overall": board.position_bias.a_share,
            "by_contractor": {
                name: bias.a_share for name, bias in board.position_bias_by_contractor.items()
            },
        },
        "mean_scores": {
            model: {
                axis: (sum((i + 1) * n for i, n in enumerate(counts)) / sum(counts))
                if sum(counts)
                else None
                for axis, counts in axes.items()
            }
            for model, axes in board.score_distributions.items()
        },
        "applies_cleanly": {
            model: clean / total if total else None
            for model, (clean, total) in board.applies_cleanly.items()
        },
        "evidence_clean": {
            model: {"clean": clean, "total": total, "share": clean / total if total else None}
            for model, (clean, total) in board.evidence_clean.items()
        },
        "submissions_per_day": {
            day.isoformat(): sum(people.values())
            for day, people in board.submissions_per_day.items()
        },
        "reviews_per_day": {
            day.isoformat(): sum(people.values()) for day, people in board.reviews_per_day.items()
        },
    }


@dataclass
class Dashboard:
    judged_turns: int
    strengths: list[ModelStrength]
    position_bias: PositionBias
    position_bias_by_contractor: dict[str, PositionBias]
    # model -> axis -> [count of score 1, ..., count of score 5]
    score_distributions: dict[str, dict[str, list[int]]]
    # model -> (clean, judged candidates)
    applies_cleanly: dict[str, tuple[int, int]]
    bounce_rate: float | None
    decisions: int
    rounds_per_task: float | None
    median_seconds_on_task: float | None
    # day -> person -> count, for the last THROUGHPUT_DAYS days
    submissions_per_day: dict[date, dict[str, int]] = field(default_factory=dict)
    reviews_per_day: dict[date, dict[str, int]] = field(default_factory=dict)
    # model -> (candidates passing the acceptance tests and breaking no test that passed
    # at the base commit, candidates with evidence); models with no evidence are absent.
    evidence_clean: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def evidence_rows(self) -> list[tuple[str, str]]:
        """(model, "3 of 4 (75%)" or "—") for every model judged or with evidence."""
        models = sorted({s.model for s in self.strengths} | set(self.evidence_clean))
        rows = []
        for model in models:
            clean, total = self.evidence_clean.get(model, (0, 0))
            rows.append(
                (model, f"{clean} of {total} ({round(100 * clean / total)}%)" if total else "—")
            )
        return rows


def _outcomes(judgements: QuerySet[Judgement]) -> list[dict]:
    """(endpoint in A, endpoint in B, sign of the preference, count) rows."""
    names = _endpoint_names()
    rows = (
        with_slots(judgements)
        .annotate(sign=Sign("preference"))
        .values("in_a__endpoint_id", "in_b__endpoint_id", "sign")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return [
        {
            "ea": names.get(row["in_a__endpoint_id"]),
            "eb": names.get(row["in_b__endpoint_id"]),
            "sign": row["sign"],
            "n": row["n"],
        }
        for row in rows
    ]


def model_strengths(rows: list[dict], *, samples: int = 200) -> list[ModelStrength]:
    """Bradley-Terry strengths with bootstrap intervals from the grouped outcomes.

    A negative preference means A was preferred. Each kind of comparison goes to the fit
    with its count, so the cost does not grow with the number of judged turns.
    """
    comparisons: Counter[Comparison] = Counter()
    for row in rows:
        if row["ea"] is None or row["eb"] is None:
            continue
        outcome = {-1: 1.0, 0: 0.5, 1: 0.0}[int(row["sign"])]
        comparisons[Comparison(a=row["ea"], b=row["eb"], outcome=outcome)] += row["n"]
    return strengths_cached(comparisons, samples=samples)


# Fits are keyed by their input; the timeout only bounds the cache's size.
FIT_CACHE_SECONDS = 7 * 24 * 3600


def strengths_cached(comparisons: Counter[Comparison], *, samples: int) -> list[ModelStrength]:
    """bradley_terry_counted, cached under a digest of the counted comparisons: the fit and
    its bootstrap are a function of them alone (the seed is fixed), so a page shown again
    before a new judgement is counted does not refit, and a new count is a new key."""
    counted = sorted((c.a, c.b, c.outcome, n) for c, n in comparisons.items())
    digest = hashlib.sha256(repr((1, samples, counted)).encode()).hexdigest()
    key = f"bradley-terry:{digest}"
    found = cache.get(key)
    if found is None:
        found = bradley_terry_counted(comparisons, samples=samples)
        cache.set(key, found, timeout=FIT_CACHE_SECONDS)
    return found


def _position_bias(judgements: QuerySet[Judgement]) -> tuple[PositionBias, dict[str, PositionBias]]:
    overall = PositionBias()
    by_contractor: dict[str, PositionBias] = defaultdict(PositionBias)
    rows = (
        judgements.annotate(sign=Sign("preference"))
        .values("turn__task__contractor__username", "sign")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in rows:
        for bias in (overall, by_contractor[row["turn__task__contractor__username"]]):
            if row["sign"] < 0:
                bias.a_wins += row["n"]
            elif row["sign"] > 0:
                bias.b_wins += row["n"]
            else:
                bias.ties += row["n"]
    return overall, dict(sorted(by_contractor.items()))


def _axes(project: Project | None) -> list[str]:
    projects = [project] if project is not None else Project.objects.all()
    keys: list[str] = []
    for p in projects:
        keys += [axis["key"] for axis in p.rubric_axes if axis["key"] not in keys]
    return keys


def _score_distributions(
    judgements: QuerySet[Judgement], axes: list[str]
) -> dict[str, dict[str, list[int]]]:
    """Per model and axis, how many candidates got each score: one grouped query per slot."""
    found: dict[str, dict[str, list[int]]] = defaultdict(lambda: {a: [0] * 5 for a in axes})
    names = _endpoint_names()
    for slot, joined in (("A", "in_a"), ("B", "in_b")):
        columns = {f"s_{axis}": F(f"scores__{slot}__{axis}") for axis in axes}
        rows = (
            with_slots(judgements)
            .annotate(model=F(f"{joined}__endpoint_id"), **columns)
            .values("model", *columns)
            .annotate(n=Count("pk"))
            .order_by()
        )
        for row in rows:
            model = names.get(row["model"])
            for axis in axes:
                score = row[f"s_{axis}"]
                if isinstance(score, int) and 1 <= score <= 5 and model:
                    found[model][axis][score - 1] += row["n"]
    return {model: found[model] for model in sorted(found)}


def _applies_cleanly(project: Project | None) -> dict[str, tuple[int, int]]:
    candidates = Candidate.objects.filter(
        turn__task__status=Task.Status.ACCEPTED, status=Candidate.Status.SUCCEEDED
    )
    if project is not None:
        candidates = candidates.filter(turn__task__project=project)
    rows = (
        candidates.values("endpoint__name")
        .annotate(total=Count("pk"), clean=Count("pk", filter=Q(applies_cleanly=True)))
        .order_by("endpoint__name")
    )
    return {row["endpoint__name"]: (row["clean"], row["total"]) for row in rows}


def _evidence_clean(project: Project | None) -> dict[str, tuple[int, int]]:
    """Per model, (clean, counted) over the candidates of accepted tasks with a verdict
    (EvidenceRun.is_clean, stored once a candidate's run and its base run are done): one
    grouped query, whatever the number of candidates."""
    runs = EvidenceRun.objects.filter(
        candidate__isnull=False, is_clean__isnull=False, task__status=Task.Status.ACCEPTED
    )
    if project is not None:
        runs = runs.filter(task__project=project)
    rows = (
        runs.values("candidate__endpoint__name")
        .annotate(clean=Count("pk", filter=Q(is_clean=True)), total=Count("pk"))
        .values_list("candidate__endpoint__name", "clean", "total")
        .order_by("candidate__endpoint__name")
    )
    return {model: (clean, total) for model, clean, total in rows}


def _median(values: QuerySet, count: int) -> float | None:
    """The median of one ordered integer column, read as one or two rows at its middle."""
    if not count:
        return None
    middle = list(values[(count - 1) // 2 : count // 2 + 1])
    return sum(middle) / len(middle)


def _per_day(rows, person_key: str) -> dict[date, dict[str, int]]:
    per_day: dict[date, dict[str, int]] = defaultdict(dict)
    for row in rows:
        per_day[row["day"]][row[person_key]] = row["n"]
    return dict(sorted(per_day.items()))


def _throughput(project: Project | None, since, until=None) -> dict[str, QuerySet]:
    """Submissions and decisions (created since, and before `until`), grouped by day and by
    project and person."""
    submissions = Submission.objects.filter(created_at__gte=since)
    reviews = Review.objects.filter(created_at__gte=since)
    if until is not None:
        submissions = submissions.filter(created_at__lt=until)
        reviews = reviews.filter(created_at__lt=until)
    if project is not None:
        submissions = submissions.filter(task__project=project)
        reviews = reviews.filter(task__project=project)
    return {
        "s": submissions.annotate(day=TruncDate("created_at"), person=F("submitted_by_id")),
        "r": reviews.annotate(day=TruncDate("created_at"), person=F("reviewer_id")),
    }


def _recent_from_scratch(project: Project | None) -> dict:
    """Submissions and decisions per day and person over the last THROUGHPUT_DAYS days,
    from every row of those days."""
    since = timezone.now() - timedelta(days=THROUGHPUT_DAYS)
    grouped = {
        kind: rows.values("day", "person").annotate(n=Count("pk")).order_by()
        for kind, rows in _throughput(project, since).items()
    }
    return _named_per_day(grouped)


def _named_per_day(grouped: dict[str, list[dict]]) -> dict:
    rows = {kind: list(found) for kind, found in grouped.items()}
    people = {row["person"] for found in rows.values() for row in found}
    names = dict(get_user_model().objects.filter(pk__in=people).values_list("pk", "username"))
    per_day = {}
    for kind, key in (("s", "submissions_per_day"), ("r", "reviews_per_day")):
        merged: Counter[tuple[date, str]] = Counter()
        for row in rows[kind]:
            merged[(row["day"], names[row["person"]])] += row["n"]
        per_day[key] = _per_day(
            [{"day": day, "person": name, "n": n} for (day, name), n in merged.items()], "person"
        )
    return per_day


def _start_of(day: date):
    return timezone.make_aware(datetime.combine(day, dtime.min))


def _days_fill_statement() -> str:
    daycount, dayfilled, submission, review, task = (
        connection.ops.quote_name(m._meta.db_table)
        for m in (DayCount, DayFilled, Submission, Review, Task)
    )
    local_day = "(x.created_at AT TIME ZONE %(tz)s)::date"
    fill = """
        {name} AS (
            INSERT INTO {daycount} (kind, project_id, day, person_id, n)
            SELECT '{kind}', t.project_id, {local_day}, x.{person}, count(*)
            FROM {source} x JOIN {task} t ON t.id = x.task_id, bounds
            WHERE x.created_at >= (bounds.lo::timestamp AT TIME ZONE %(tz)s)
              AND x.created_at < ((bounds.hi + 1)::timestamp AT TIME ZONE %(tz)s)
              AND {local_day} IN (SELECT day FROM missing)
            GROUP BY 2, 3, 4 ORDER BY 2, 3, 4
            ON CONFLICT DO NOTHING
        )"""
    fills = [
        fill.format(name=name, daycount=daycount, kind=kind, local_day=local_day,
                    person=person, source=source, task=task)
        for name, kind, person, source in (
            ("subs", "s", "submitted_by_id", submission),
            ("revs", "r", "reviewer_id", review),
        )
    ]  # fmt: skip
    return f"""
        WITH missing AS (
            SELECT d::date AS day
            FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') d
            WHERE d::date NOT IN (SELECT day FROM {dayfilled})
        ),
        bounds AS (SELECT min(day) AS lo, max(day) AS hi FROM missing),
        {",".join(fills)},
        marks AS (INSERT INTO {dayfilled} (day) SELECT day FROM missing ON CONFLICT DO NOTHING)
        SELECT 1
    """  # noqa: S608 - fixed table names and literals only


def _days_fill(first: date, last: date) -> None:
    """Store the per-day counts of the days from `first` to `last` (over already) that are
    not stored yet, in one statement whatever is missing (nothing, once a day's first page
    stored it): past days' rows no longer change. Two pages filling at once store the same
    counts; the second's are ignored (ON CONFLICT DO NOTHING)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _days_fill_statement(),
            {"first": first, "last": last, "tz": timezone.get_current_timezone_name()},
        )


def _recent(project: Project | None) -> dict:
    """_recent_from_scratch from the stored counts of the whole days in the window, plus
    the rows of its first, partial day and of today read live (two days of rows, through
    the created_at indexes): the cost does not grow with the throughput of the month."""
    now = timezone.now()
    since = now - timedelta(days=THROUGHPUT_DAYS)
    first_whole = timezone.localdate(since) + timedelta(days=1)
    today = timezone.localdate(now)
    _days_fill(first_whole, today - timedelta(days=1))
    stored = DayCount.objects.filter(day__gte=first_whole, day__lt=today)
    if project is not None:
        stored = stored.filter(project=project)
    grouped = {
        kind: list(stored.filter(kind=kind).values("day", "person").annotate(n=Sum("n")).order_by())
        for kind in ("s", "r")
    }
    edges = [(since, _start_of(first_whole)), (_start_of(today), None)]
    for edge_since, edge_until in edges:
        for kind, rows in _throughput(project, edge_since, edge_until).items():
            grouped[kind] += list(rows.values("day", "person").annotate(n=Count("pk")).order_by())
    return _named_per_day(grouped)


def _tasks(project: Project | None) -> QuerySet[Task]:
    return Task.objects.all() if project is None else Task.objects.filter(project=project)


def dashboard_from_scratch(*, project: Project | None = None, samples: int = 200) -> Dashboard:
    """The dashboard computed from every judgement, review and task (cost linear in them):
    what `dashboard` must equal, kept for the test that checks so."""
    judgements = final_judgements(project)
    outcomes = _outcomes(judgements)
    overall, by_contractor = _position_bias(judgements)
    tasks = _tasks(project)
    reviews = Review.objects.filter(task__in=tasks)
    review_counts = reviews.aggregate(
        total=Count("pk"), bounces=Count("pk", filter=Q(decision=Review.Decision.BOUNCE))
    )
    closed = tasks.filter(status__in=(Task.Status.ACCEPTED, Task.Status.REJECTED))
    # Every decided round is one review, so reviews per closed task is rounds per task.
    rounds = closed.aggregate(total=Count("pk", distinct=True), rounds=Count("reviews"))
    submitted = tasks.exclude(submitted_at=None)
    return Dashboard(
        judged_turns=sum(row["n"] for row in outcomes),
        strengths=model_strengths(outcomes, samples=samples),
        position_bias=overall,
        position_bias_by_contractor=by_contractor,
        score_distributions=_score_distributions(judgements, _axes(project)),
        applies_cleanly=_applies_cleanly(project),
        bounce_rate=(
            review_counts["bounces"] / review_counts["total"] if review_counts["total"] else None
        ),
        decisions=review_counts["total"],
        rounds_per_task=rounds["rounds"] / rounds["total"] if rounds["total"] else None,
        median_seconds_on_task=_median(
            submitted.order_by("active_seconds").values_list("active_seconds", flat=True),
            submitted.count(),
        ),
        evidence_clean=_evidence_clean(project),
        **_recent_from_scratch(project),
    )


# --- From the aggregates (reviews/aggregates.py) --------------------------------------------


def _of(model, project: Project | None) -> QuerySet:
    rows = model.objects.all()
    return rows if project is None else rows.filter(project=project)


def counted_outcomes(project: Project | None) -> list[dict]:
    """_outcomes' rows (endpoint names in A and B, sign, count) from the pair counts."""
    names = _endpoint_names()
    rows = (
        _of(PairOutcomeCount, project)
        .filter(axis="")
        .values("endpoint_a_id", "endpoint_b_id")
        .annotate(a=Sum("a_won"), b=Sum("b_won"), t=Sum("tied"))
        .order_by()
    )
    outcomes = []
    for row in rows:
        for sign, key in ((-1, "a"), (1, "b"), (0, "t")):
            if row[key]:
                outcomes.append(
                    {
                        "ea": names.get(row["endpoint_a_id"]),
                        "eb": names.get(row["endpoint_b_id"]),
                        "sign": sign,
                        "n": row[key],
                    }
                )
    return outcomes


def _counted_position_bias(project: Project | None) -> tuple[PositionBias, dict[str, PositionBias]]:
    overall = PositionBias()
    by_contractor: dict[str, PositionBias] = {}
    rows = (
        _of(ContractorSlotCount, project)
        .values("contractor__username")
        .annotate(a=Sum("a_won"), b=Sum("b_won"), t=Sum("tied"))
        .order_by()
    )
    for row in rows:
        bias = PositionBias(a_wins=row["a"], b_wins=row["b"], ties=row["t"])
        by_contractor[row["contractor__username"]] = bias
        overall.a_wins += bias.a_wins
        overall.b_wins += bias.b_wins
        overall.ties += bias.ties
    return overall, dict(sorted(by_contractor.items()))


def _counted_scores(project: Project | None, axes: list[str]) -> dict[str, dict[str, list[int]]]:
    found: dict[str, dict[str, list[int]]] = defaultdict(lambda: {a: [0] * 5 for a in axes})
    names = _endpoint_names()
    rows = (
        _of(ScoreCount, project)
        .filter(axis__in=axes)
        .values_list("endpoint_id", "axis", "score")
        .annotate(n=Sum("n"))
        .order_by()
    )
    for endpoint, axis, score, n in rows:
        found[names[endpoint]][axis][score - 1] += n
    return {model: found[model] for model in sorted(found)}


def _counted_median(project: Project | None) -> float | None:
    """The median active seconds of submitted tasks: closed tasks from their histogram,
    the others (submitted, in review or back with their contractor) read live."""
    counts: Counter[int] = Counter(
        dict(_of(TaskSecondsCount, project).values_list("seconds").annotate(n=Sum("n")).order_by())
    )
    open_states = [s for s in Task.Status.values if s not in CLOSED_STATES]
    live = (
        _tasks(project)
        .filter(status__in=open_states, submitted_at__isnull=False)
        .values_list("active_seconds")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts.update(dict(live))
    total = sum(counts.values())
    if not total:
        return None
    wanted = {(total - 1) // 2, total // 2}
    middle, seen = [], 0
    for seconds in sorted(counts):
        n = counts[seconds]
        middle += [seconds for position in wanted if seen <= position < seen + n]
        seen += n
    return sum(middle) / len(middle)


def dashboard(*, project: Project | None = None, samples: int = 200) -> Dashboard:
    """The dashboard of a project (None: every project) from the aggregates review_decide
    keeps: O(models + contractors + axes) rows, whatever the number of judged turns.
    Equal to dashboard_from_scratch on the same data, which it is where no aggregates are
    kept (SQLite)."""
    if not aggregates.aggregates_kept():
        return dashboard_from_scratch(project=project, samples=samples)
    outcomes = counted_outcomes(project)
    overall, by_contractor = _counted_position_bias(project)
    totals = _of(ProjectDecisionCount, project).aggregate(
        judged=Sum("judged_turns", default=0),
        reviews=Sum("reviews", default=0),
        bounces=Sum("bounces", default=0),
        closed=Sum("closed_tasks", default=0),
        rounds=Sum("closed_rounds", default=0),
    )
    applies = (
        _of(CandidateCount, project)
        .values_list("endpoint__name")
        .annotate(clean=Sum("clean"), total=Sum("total"))
        .order_by("endpoint__name")
    )
    return Dashboard(
        judged_turns=totals["judged"],
        strengths=model_strengths(outcomes, samples=samples),
        position_bias=overall,
        position_bias_by_contractor=by_contractor,
        score_distributions=_counted_scores(project, _axes(project)),
        applies_cleanly={name: (clean, total) for name, clean, total in applies},
        bounce_rate=totals["bounces"] / totals["reviews"] if totals["reviews"] else None,
        decisions=totals["reviews"],
        rounds_per_task=totals["rounds"] / totals["closed"] if totals["closed"] else None,
        median_seconds_on_task=_counted_median(project),
        evidence_clean=_evidence_clean(project),
        **_recent(project),
    )
