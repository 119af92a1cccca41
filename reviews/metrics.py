"""Reviewer metrics for admins: throughput, bounce rate, time to decision."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

from reviews.earning_selectors import Period
from reviews.models import Review


@dataclass(frozen=True)
class ReviewerMetrics:
    reviewer_id: int
    username: str
    decisions: int
    bounces: int
    # Seconds from claiming to deciding, over the decisions that had a claim.
    median_seconds_to_decision: float | None
    reviews_per_hour: float | None

    @property
    def bounce_rate(self) -> float:
        return self.bounces / self.decisions if self.decisions else 0.0


def reviewer_metrics(*, period: Period) -> list[ReviewerMetrics]:
    """Per reviewer over decisions made in the period.

    Reviews per hour divides decisions by the hours spent between claim and decision, so
    time away from the queue does not count against a reviewer.
    """
    since, until = period.bounds
    rows = (
        Review.objects.filter(created_at__gte=since, created_at__lt=until)
        .values_list("reviewer_id", "reviewer__username", "decision", "claimed_at", "created_at")
        .order_by("reviewer__username", "created_at")
    )
    grouped: dict[tuple[int, str], list[tuple]] = defaultdict(list)
    for reviewer_id, username, decision, claimed_at, decided_at in rows:
        grouped[(reviewer_id, username)].append((decision, claimed_at, decided_at))
    metrics = []
    for (reviewer_id, username), decisions in grouped.items():
        durations = [
            max(0.0, (decided - claimed).total_seconds())
            for _, claimed, decided in decisions
            if claimed is not None
        ]
        busy_hours = sum(durations) / 3600
        metrics.append(
            ReviewerMetrics(
                reviewer_id=reviewer_id,
                username=username,
                decisions=len(decisions),
                bounces=sum(1 for d, _, _ in decisions if d == Review.Decision.BOUNCE),
                median_seconds_to_decision=statistics.median(durations) if durations else None,
                reviews_per_hour=len(durations) / busy_hours if busy_hours > 0 else None,
            )
        )
    return metrics
