"""Pay, the writes: what an accepted task earns, fixed when it is accepted."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone

from reviews.models import Earning
from tasks.models import Project, Task

CENT = Decimal("0.01")


def earning_amount(*, project: Project, active_seconds: int) -> tuple[Decimal, bool]:
    """The project's rate, or less when an hourly cap applies: (amount, whether capped)."""
    rate = project.pay_per_task
    if project.hourly_rate_cap is None:
        return rate, False
    cap = (project.hourly_rate_cap * Decimal(active_seconds) / Decimal(3600)).quantize(
        CENT, rounding=ROUND_HALF_UP
    )
    return (cap, True) if cap < rate else (rate, False)


def earning_record(*, task: Task) -> Earning:
    """Fix what an accepted task earns; the project's later rate changes do not touch it."""
    amount, capped = earning_amount(project=task.project, active_seconds=task.active_seconds)
    return Earning.objects.create(
        task=task,
        contractor_id=task.contractor_id,
        amount=amount,
        rate=task.project.pay_per_task,
        active_seconds=task.active_seconds,
        capped=capped,
        earned_at=task.accepted_at or timezone.now(),
    )
