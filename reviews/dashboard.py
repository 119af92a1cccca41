"""Quality dashboard figures, per project or overall, from grouped database queries.

Every figure reads the *final* judgement of each judged turn of accepted tasks (the round
the reviewer accepted), the same set a default export holds. Queries group in the database
so their cost stays flat in Python whatever the number of judged turns.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db.models import Count, F, FilteredRelation, Q, QuerySet
from django.db.models.functions import Sign, TruncDate
from django.utils import timezone

from reviews.models import Review
from tasks.bradley_terry import Comparison, ModelStrength, bradley_terry_counted
from tasks.models import (
    Candidate,
    EvidenceRun,
    Judgement,
    ModelEndpoint,
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
    return bradley_terry_counted(comparisons, samples=samples)


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


def dashboard(*, project: Project | None = None, samples: int = 200) -> Dashboard:
    judgements = final_judgements(project)
    outcomes = _outcomes(judgements)
    overall, by_contractor = _position_bias(judgements)
    tasks = Task.objects.all() if project is None else Task.objects.filter(project=project)
    reviews = Review.objects.filter(task__in=tasks)
    review_counts = reviews.aggregate(
        total=Count("pk"), bounces=Count("pk", filter=Q(decision=Review.Decision.BOUNCE))
    )
    closed = tasks.filter(status__in=(Task.Status.ACCEPTED, Task.Status.REJECTED))
    # Every decided round is one review, so reviews per closed task is rounds per task.
    rounds = closed.aggregate(total=Count("pk", distinct=True), rounds=Count("reviews"))
    submitted = tasks.exclude(submitted_at=None)
    since = timezone.now() - timedelta(days=THROUGHPUT_DAYS)
    submissions = (
        Submission.objects.filter(task__in=tasks, created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day", "submitted_by__username")
        .annotate(n=Count("pk"))
        .order_by()
    )
    decisions = (
        reviews.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day", "reviewer__username")
        .annotate(n=Count("pk"))
        .order_by()
    )
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
        submissions_per_day=_per_day(submissions, "submitted_by__username"),
        reviews_per_day=_per_day(decisions, "reviewer__username"),
        evidence_clean=_evidence_clean(project),
    )
