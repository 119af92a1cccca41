"""Pay, the reads: what each contractor has earned, payout totals (what an accepted task
earns is fixed by earning_services)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, Sum
from django.utils import timezone

from reviews.earning_services import CENT, earning_amount
from reviews.exports import csv_safe
from reviews.models import Earning, JudgingTask, Review
from tasks.models import Task

if TYPE_CHECKING:
    from django.contrib.auth.models import User


@dataclass(frozen=True)
class ContractorEarnings:
    tasks: list[Task]
    pending: Decimal
    accepted: Decimal
    # Judged pairs (judging tasks): paid when submitted, never reviewed.
    judged: int = 0
    judging: Decimal = Decimal("0")

    @property
    def total(self) -> Decimal:
        return self.pending + self.accepted + self.judging


def contractor_earnings(*, user: User) -> ContractorEarnings:
    """The contractor's tasks with state, time on task and pay.

    Accepted pay is what was fixed at acceptance; pending is what tasks under review would
    earn if accepted now (the rate, capped by time on task).
    """
    tasks = list(
        Task.objects.filter(contractor=user)
        .select_related("project", "repository", "earning")
        .order_by("-created_at")
    )
    pending = Decimal("0")
    accepted = Decimal("0")
    for task in tasks:
        earning = getattr(task, "earning", None)
        if earning is not None:
            task.pay = earning.amount
            accepted += earning.amount
        elif task.status == Task.Status.SUBMITTED:
            task.pay, _ = earning_amount(project=task.project, active_seconds=task.active_seconds)
            pending += task.pay
        else:
            task.pay = None
    judged = JudgingTask.objects.filter(
        contractor=user, status=JudgingTask.Status.SUBMITTED
    ).aggregate(count=Count("pk"), amount=Sum("earned"))
    return ContractorEarnings(
        tasks=tasks,
        pending=pending,
        accepted=accepted,
        judged=judged["count"],
        judging=Decimal(judged["amount"] or 0).quantize(CENT),
    )


@dataclass(frozen=True)
class Period:
    """Whole days from `start` to `end` inclusive, in the site's time zone."""

    start: date
    end: date

    @classmethod
    def this_month(cls) -> Period:
        today = timezone.localdate()
        return cls(start=today.replace(day=1), end=today)

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        zone = timezone.get_current_timezone()
        return (
            datetime.combine(self.start, time.min, tzinfo=zone),
            datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=zone),
        )


def payout_by_contractor(*, period: Period) -> list[dict]:
    """Per contractor for the period: accepted tasks (by acceptance time), hours, judged
    pairs (by submission time, paid at the judging rate) and the amount to pay for both."""
    since, until = period.bounds
    people = ("contractor_id", "contractor__username", "contractor__email")
    tasks = (
        Earning.objects.filter(earned_at__gte=since, earned_at__lt=until)
        .values(*people)
        .annotate(tasks=Count("pk"), seconds=Sum("active_seconds"), amount=Sum("amount"))
    )
    judged = (
        JudgingTask.objects.filter(
            status=JudgingTask.Status.SUBMITTED, submitted_at__gte=since, submitted_at__lt=until
        )
        .values(*people)
        .annotate(judged=Count("pk"), seconds=Sum("active_seconds"), amount=Sum("earned"))
    )
    rows: dict[int, dict] = {}
    for source, count in ((tasks, "tasks"), (judged, "judged")):
        for row in source:
            entry = rows.setdefault(
                row["contractor_id"],
                {
                    "contractor_id": row["contractor_id"],
                    "username": row["contractor__username"],
                    "email": row["contractor__email"],
                    "tasks": 0,
                    "judged": 0,
                    "seconds": 0,
                    "judging_amount": Decimal(0),
                    "amount": Decimal(0),
                },
            )
            entry[count] = row[count]
            entry["seconds"] += row["seconds"] or 0
            # SQLite sums decimals without their scale (280, not 280.00).
            entry["amount"] += Decimal(row["amount"] or 0)
            if count == "judged":
                entry["judging_amount"] = Decimal(row["amount"] or 0)
    return [
        {
            **{key: value for key, value in entry.items() if key != "seconds"},
            "hours": round(entry["seconds"] / 3600, 2),
            "judging_amount": entry["judging_amount"].quantize(CENT),
            "amount": entry["amount"].quantize(CENT),
        }
        for entry in sorted(rows.values(), key=lambda entry: entry["username"])
    ]


def totals_by_reviewer(*, period: Period) -> list[dict]:
    """Decisions per reviewer in the period, and the pay of the tasks they accepted."""
    since, until = period.bounds
    in_period = Q(reviews__created_at__gte=since, reviews__created_at__lt=until)
    rows = (
        get_user_model()
        .objects.annotate(
            decisions=Count("reviews", filter=in_period),
            accepted=Count(
                "reviews", filter=in_period & Q(reviews__decision=Review.Decision.ACCEPT)
            ),
            accepted_pay=Sum(
                "reviews__task__earning__amount",
                filter=in_period & Q(reviews__decision=Review.Decision.ACCEPT),
            ),
        )
        .filter(decisions__gt=0)
        .order_by("username")
        .values("pk", "username", "decisions", "accepted", "accepted_pay")
    )
    return [
        {
            "reviewer_id": row["pk"],
            "username": row["username"],
            "decisions": row["decisions"],
            "accepted": row["accepted"],
            "bounced": row["decisions"] - row["accepted"],
            "accepted_pay": Decimal(row["accepted_pay"] or 0).quantize(CENT),
        }
        for row in rows
    ]


PAYOUT_CSV_HEADER = [
    "contractor_id",
    "username",
    "email",
    "period_start",
    "period_end",
    "tasks",
    "hours",
    "amount",
    # Appended, so the earlier columns keep their places; `amount` includes judging pay.
    "judged_pairs",
    "judging_amount",
]


def payout_csv_lines(*, period: Period) -> Iterator[str]:
    """The payout file: one row per contractor; every cell neutralised against formulas."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PAYOUT_CSV_HEADER)
    for row in payout_by_contractor(period=period):
        writer.writerow(
            csv_safe(value)
            for value in (
                row["contractor_id"],
                row["username"],
                row["email"],
                period.start.isoformat(),
                period.end.isoformat(),
                row["tasks"],
                row["hours"],
                row["amount"],
                row["judged"],
                row["judging_amount"],
            )
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()
