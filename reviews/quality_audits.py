"""Reviewer audits: a share of accepted tasks goes to a second reviewer, who upholds or
overturns the first reviewer's acceptance.

An overturn is a quality signal about the first reviewer, counted in their overturn rate on
the dashboard. It changes nothing about the task: the task stays accepted, its earning and
its judgements stay as they are, and exports are untouched. What to do with an overturned
task is outside this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, F, Q, QuerySet, Sum
from django.shortcuts import get_object_or_404

from marlin.exceptions import (
    ApplicationError,
    ConflictError,
    InvalidTransition,
    PermissionDeniedError,
)
from marlin.permissions import can_oversee, is_reviewer
from marlin.text import normalise_newlines
from reviews import aggregates
from reviews.models import Review, ReviewAudit, ReviewerAuditCount
from reviews.quality_share import in_share
from tasks.models import Project

if TYPE_CHECKING:
    from django.contrib.auth.models import User

NOTE_MAX_CHARS = 5_000
# 95 % two-sided.
WILSON_Z = 1.959963984540054

OWN_REVIEW = "You cannot audit your own review."
OWN_TASK = "You cannot audit a review of your own task."

_Status = ReviewAudit.Status
DECIDED = (_Status.UPHELD, _Status.OVERTURNED)


def audit_maybe_open(*, review: Review) -> ReviewAudit | None:
    """Open an audit of an acceptance when its task falls in the project's audit share.

    Called by review_decide inside the acceptance's transaction. The share is a stable hash
    of the task id, so 0 % opens none, 100 % opens every one, and a replayed acceptance
    neither opens a second audit nor changes its mind.
    """
    if review.decision != Review.Decision.ACCEPT:
        return None
    percent = review.task.project.audit_percent
    if not in_share(key=f"audit:{review.task_id}", percent=percent):
        return None
    audit, _ = ReviewAudit.objects.get_or_create(review=review)
    return audit


def _check_may_audit(audit: ReviewAudit, user: User) -> None:
    """Raise PermissionDeniedError unless `user` is a reviewer independent of the review."""
    if not is_reviewer(user):
        raise PermissionDeniedError("Only reviewers can audit reviews.")
    if audit.review.reviewer_id == user.pk:
        raise PermissionDeniedError(OWN_REVIEW)
    if audit.review.task.contractor_id == user.pk:
        raise PermissionDeniedError(OWN_TASK)


def audit_take(*, audit: ReviewAudit, by: User) -> ReviewAudit:
    """Take an open audit for `by` (OPEN → TAKEN); one auditor per audit.

    Never the reviewer audited nor the task's contractor. Taking again what one holds
    returns it (a double click). The status change is a compare-and-set, so of two
    reviewers taking at once exactly one wins; the other gets a ConflictError.
    """
    _check_may_audit(audit, by)
    try:
        audit.take(by=by)
    except InvalidTransition as exc:
        # Lost a race, or a stale page: say what the audit is now.
        audit.refresh_from_db(fields=["status", "auditor", "note", "decided_at"])
        if audit.status == _Status.TAKEN and audit.auditor_id == by.pk:
            return audit
        if audit.status == _Status.TAKEN:
            raise ConflictError("This audit is already taken by another reviewer.") from exc
        raise ConflictError("This audit is already decided.") from exc
    return audit


def audit_decide(*, audit: ReviewAudit, by: User, overturn: bool, note: str) -> ReviewAudit:
    """Uphold or overturn the audited acceptance (TAKEN → UPHELD | OVERTURNED).

    Only the reviewer holding the audit decides it. An overturn needs a note saying why.
    The same decision sent twice is answered with the first (a double submit). Nothing
    but the audit row changes (see the module docstring).
    """
    note = normalise_newlines(note or "").strip()
    if not is_reviewer(by):
        raise PermissionDeniedError("Only reviewers can audit reviews.")
    if audit.auditor_id != by.pk:
        if audit.status == _Status.OPEN:
            raise ConflictError("Take this audit before deciding it.")
        raise PermissionDeniedError("Only the reviewer who took this audit can decide it.")
    if overturn and not note:
        raise ApplicationError("Overturning a decision needs a note saying why.")
    if len(note) > NOTE_MAX_CHARS:
        raise ApplicationError(f"An audit note is limited to {NOTE_MAX_CHARS} characters.")
    wanted = _Status.OVERTURNED if overturn else _Status.UPHELD
    try:
        with transaction.atomic():
            audit.decide(overturn=overturn, note=note)
            aggregates.aggregates_add_audit(audit=audit)
    except InvalidTransition as exc:
        audit.refresh_from_db(fields=["status", "note", "decided_at"])
        if audit.status == wanted and audit.note == note:
            return audit
        raise ConflictError(
            f"This audit is already decided ({audit.get_status_display().lower()})."
        ) from exc
    return audit


# --- Selectors ---------------------------------------------------------------------------


def _audits() -> QuerySet[ReviewAudit]:
    return ReviewAudit.objects.select_related(
        "review__task__project", "review__task__repository", "review__reviewer", "auditor"
    )


def audit_queue(*, user: User) -> QuerySet[ReviewAudit]:
    """The audits a reviewer may work on: the ones they hold, then the open ones they may
    take (never of their own review nor of their own task), oldest first."""
    if not is_reviewer(user):
        return ReviewAudit.objects.none()
    may_take = (
        Q(status=_Status.OPEN) & ~Q(review__reviewer=user) & ~Q(review__task__contractor=user)
    )
    held = Q(status=_Status.TAKEN, auditor=user)
    # "TAKEN" > "OPEN": what the reviewer holds comes first.
    return _audits().filter(may_take | held).order_by("-status", "created_at", "pk")


def audit_get_for_user(*, user: User, pk: int) -> ReviewAudit:
    """An audit as a reviewer (or an admin) may open it; 404 when there is none, 403 for
    the reviewer audited and for the task's contractor."""
    audit = get_object_or_404(_audits(), pk=pk)
    if can_oversee(user):
        return audit
    try:
        _check_may_audit(audit, user)
    except PermissionDeniedError as exc:
        raise PermissionDenied(exc.message) from exc
    return audit


@dataclass(frozen=True)
class OverturnRate:
    reviewer_id: int
    username: str
    audited: int
    overturned: int
    rate: float
    # The 95 % Wilson score interval of the rate.
    low: float
    high: float


def wilson_interval(successes: int, trials: int, *, z: float = WILSON_Z) -> tuple[float, float]:
    """The Wilson score interval of successes / trials; (0, 1) when there are no trials.

    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or n
    overturns, which matters at the small counts audits give per reviewer.
    """
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    z2n = z * z / trials
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / trials + z2n / (4 * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def reviewer_overturn_rates(*, project: Project | None = None) -> list[OverturnRate]:
    """Per audited reviewer: decided audits of their acceptances, how many were overturned,
    the rate and its 95 % Wilson interval; highest rate first. Read from the counts
    audit_decide keeps (ReviewerAuditCount): one row per reviewer and project.

    Audits still open or taken are not counted: they have no outcome yet.
    """
    if not aggregates.aggregates_kept():
        return reviewer_overturn_rates_from_scratch(project=project)
    counts = ReviewerAuditCount.objects.all()
    if project is not None:
        counts = counts.filter(project=project)
    rows = (
        counts.values("reviewer_id", username=F("reviewer__username"))
        .annotate(audited=Sum("audited"), overturned=Sum("overturned"))
        .order_by()
    )
    return _rates(rows)


def reviewer_overturn_rates_from_scratch(*, project: Project | None = None) -> list[OverturnRate]:
    """The same from every decided audit (one GROUP BY): the reference the counts are
    tested against."""
    audits = ReviewAudit.objects.filter(status__in=DECIDED)
    if project is not None:
        audits = audits.filter(review__task__project=project)
    rows = (
        audits.values(
            reviewer_id=F("review__reviewer_id"), username=F("review__reviewer__username")
        )
        .annotate(
            audited=Count("pk"),
            overturned=Count("pk", filter=Q(status=_Status.OVERTURNED)),
        )
        .order_by()
    )
    return _rates(rows)


def _rates(rows) -> list[OverturnRate]:
    rates = []
    for row in rows:
        audited, overturned = row["audited"], row["overturned"]
        if not audited:
            continue
        low, high = wilson_interval(overturned, audited)
        rates.append(
            OverturnRate(
                reviewer_id=row["reviewer_id"],
                username=row["username"],
                audited=audited,
                overturned=overturned,
                rate=overturned / audited,
                low=low,
                high=high,
            )
        )
    return sorted(rates, key=lambda r: (-r.rate, -r.audited, r.username))
