"""A project's pool of endpoints: its state for the admin, and the pair a new task gets.

The choice itself is tasks/pairing.py, a pure function of counts and a random source; this
module reads those counts from the database and turns the answer back into endpoints.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, F, FilteredRelation, Q
from django.db.models.functions import Sign

from marlin.database import is_postgresql
from marlin.exceptions import ApplicationError
from tasks import pairing
from tasks.models import (
    CLOSED_STATES,
    Candidate,
    Judgement,
    ModelEndpoint,
    PairOutcomeCount,
    Project,
    Task,
)

# Said to contractors: which endpoint is off is not theirs to know.
PAUSED = "This project's models are paused; try again later."


@dataclass(frozen=True)
class PoolEntry:
    """One pool row with the load its endpoint carries now (across every project)."""

    endpoint: ModelEndpoint
    weight: float
    is_retired: bool
    running: int
    queued: int

    @property
    def is_saturated(self) -> bool:
        return (
            self.running >= self.endpoint.max_concurrency
            and self.queued >= settings.MARLIN_POOL_SATURATION_QUEUE
        )

    @property
    def state(self) -> str:
        """Why the entry does or does not take new tasks, in the admin's words."""
        if self.is_retired:
            return "retired"
        if not self.endpoint.is_enabled:
            return "endpoint disabled"
        if self.is_saturated:
            return f"saturated ({self.running} running, {self.queued} waiting)"
        return "drawing tasks"


def pool_entries(project: Project) -> list[PoolEntry]:
    rows = list(project.pool.select_related("endpoint"))
    load = Counter(
        {
            (row["endpoint_id"], row["status"]): row["n"]
            for row in Candidate.objects.filter(
                endpoint__in=[r.endpoint_id for r in rows],
                status__in=(Candidate.Status.QUEUED, Candidate.Status.RUNNING),
            )
            .values("endpoint_id", "status")
            .annotate(n=Count("pk"))
            .order_by()
        }
    )
    return [
        PoolEntry(
            endpoint=row.endpoint,
            weight=float(row.weight),
            is_retired=not row.is_enabled,
            running=load[(row.endpoint_id, Candidate.Status.RUNNING)],
            queued=load[(row.endpoint_id, Candidate.Status.QUEUED)],
        )
        for row in rows
    ]


def pool_summary(entries: list[PoolEntry]) -> str:
    """ "3 drawing tasks, 1 retired", and whether new tasks can be made at all."""
    counts = Counter(
        "retired"
        if e.is_retired
        else "off"
        if not e.endpoint.is_enabled
        else "saturated"
        if e.is_saturated
        else "drawing"
        for e in entries
    )
    drawing = counts["drawing"] + counts["saturated"]
    parts = [
        f"{counts[k]} {label}"
        for k, label in (
            ("drawing", "drawing tasks"),
            ("saturated", "saturated"),
            ("off", "endpoint disabled"),
            ("retired", "retired"),
        )
        if counts[k]
    ]
    if drawing < 2:
        parts.append("no new tasks: fewer than two endpoints can answer")
    return ", ".join(parts) or "empty: no new tasks"


def _judged_wins(project: Project) -> dict[tuple[int, int], float]:
    """wins[(i, j)]: judged turns in which endpoint i beat j (a tie half each way), from the
    current round's judgement of every submitted or accepted task of the project.

    Accepted tasks come from the pair counts review_decide keeps (PairOutcomeCount: one row
    per endpoint pair, whatever the number of judgements); submitted ones, the review queue,
    are grouped live. A task moves from one to the other in the transaction that accepts
    it, so none is counted twice or missed. Where the counts are not kept (SQLite, see
    reviews.aggregates) accepted tasks are grouped live too.
    """
    outcomes: Counter[tuple[int, int, int]] = Counter()
    live = [Task.Status.SUBMITTED]
    if is_postgresql():
        counted = PairOutcomeCount.objects.filter(project=project, axis="").values_list(
            "endpoint_a_id", "endpoint_b_id", "a_won", "b_won", "tied"
        )
        for a, b, a_won, b_won, tied in counted:
            outcomes.update({(a, b, -1): a_won, (a, b, 1): b_won, (a, b, 0): tied})
    else:
        live.append(Task.Status.ACCEPTED)
    in_review = (
        Judgement.objects.filter(
            turn__task__project=project,
            turn__task__status__in=live,
            round=F("turn__task__round"),
        )
        .annotate(
            in_a=FilteredRelation("turn__candidates", condition=Q(turn__candidates__slot="A")),
            in_b=FilteredRelation("turn__candidates", condition=Q(turn__candidates__slot="B")),
            sign=Sign("preference"),
        )
        .values_list("in_a__endpoint_id", "in_b__endpoint_id", "sign")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for a, b, sign, n in in_review:
        outcomes[(a, b, sign)] += n
    wins: Counter[tuple[int, int]] = Counter()
    for (a, b, sign), n in outcomes.items():
        if a is None or b is None or a == b or not n:
            continue
        # A negative preference means slot A was preferred.
        wins[(a, b)] += {-1: 1.0, 0: 0.5, 1: 0.0}[sign] * n
        wins[(b, a)] += {-1: 0.0, 0: 0.5, 1: 1.0}[sign] * n
    return dict(wins)


def _assigned(project: Project, wins: dict[tuple[int, int], float]) -> dict[tuple[int, int], int]:
    """Comparisons per pair, judged or still in flight (an open task counts once), so that
    tasks created before any judgement comes back do not all go to the same pair."""
    assigned: Counter[tuple[int, int]] = Counter()
    for (i, j), won in wins.items():
        if i < j:
            assigned[(i, j)] += round(won + wins.get((j, i), 0.0))
    in_flight = (
        Task.objects.filter(project=project)
        .exclude(status__in=(*CLOSED_STATES, Task.Status.SUBMITTED))
        .values("first_endpoint_id", "second_endpoint_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in in_flight:
        assigned[(row["first_endpoint_id"], row["second_endpoint_id"])] += row["n"]
    return dict(assigned)


def _rng(project: Project) -> random.Random:
    if settings.MARLIN_PAIRING_SEED is None:
        return random.SystemRandom()
    # Tests: the n-th draw of a project is the same on every run.
    drawn = Task.objects.filter(project=project).count()
    return random.Random(f"{settings.MARLIN_PAIRING_SEED}:{project.pk}:{drawn}")  # noqa: S311


def pair_draw(*, project: Project) -> tuple[ModelEndpoint, ModelEndpoint]:
    """The two endpoints a new task of `project` compares, in id order.

    Retired pool rows and disabled endpoints never take part. Saturated endpoints (at their
    concurrency cap with a long queue) are skipped while two others remain; if fewer than
    two are left, the task queues behind them rather than being refused.
    """
    live = [e for e in pool_entries(project) if not e.is_retired and e.endpoint.is_enabled]
    if len(live) < 2:
        raise ApplicationError(PAUSED)
    free = [e for e in live if not e.is_saturated]
    candidates = free if len(free) >= 2 else live
    wins = _judged_wins(project) if project.pair_sampling == Project.PairSampling.ADAPTIVE else {}
    low, high = pairing.choose_pair(
        members=[pairing.Member(key=e.endpoint.pk, weight=e.weight) for e in candidates],
        mode=project.pair_sampling,
        rng=_rng(project),
        wins=wins,
        assigned=_assigned(project, wins),
    )
    by_key = {e.endpoint.pk: e.endpoint for e in candidates}
    return by_key[low], by_key[high]
