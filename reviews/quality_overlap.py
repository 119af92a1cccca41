"""Judging tasks: an accepted turn judged again by a second contractor (overlap), with the
project's gold turns mixed in among them.

A judging task shows the same prompt and the same two candidates, in the same or swapped
slots, and asks for a judgement only: no prompt writing and no generation. It never shows
the first judgement, who gave it or the review. It is paid at the project's judging rate
when submitted; there is no review round for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.shortcuts import get_object_or_404
from django.utils import timezone

from marlin.exceptions import (
    ApplicationError,
    ConflictError,
    InvalidTransition,
    PermissionDeniedError,
)
from marlin.permissions import is_contractor
from marlin.text import normalise_newlines
from reviews import quality_agreement
from reviews.models import GoldTurn, JudgingTask
from reviews.quality_share import in_share
from tasks.models import Judgement, Preference, Project, Task, Turn
from tasks.services import credited_seconds, validate_scores

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def judging_tasks_for_accepted(*, task: Task) -> list[JudgingTask]:
    """Open a judging task for each judged turn of the just accepted task in the project's
    overlap share. Turns whose candidates made the same change are left out: there is no
    preference to agree on."""
    percent = task.project.overlap_percent
    if percent <= 0:
        return []
    turns = Turn.objects.filter(
        task=task, judgements__round=task.round, has_identical_candidates=False
    )
    opened = [
        JudgingTask(
            project=task.project,
            turn=turn,
            swapped=in_share(key=f"swap:{turn.pk}", percent=50),
        )
        for turn in turns
        if in_share(key=f"overlap:{turn.pk}", percent=percent)
    ]
    # A turn already opened (the hook run twice) is skipped by the constraint.
    return JudgingTask.objects.bulk_create(opened, ignore_conflicts=True)


def _may_judge(user: User) -> None:
    if not is_contractor(user):
        raise PermissionDeniedError("Only contractors judge pairs.")


def _open_overlap_for(user: User) -> Any:
    """Open overlap tasks this contractor may take, oldest first: never on their own task,
    never a turn they judged already."""
    return (
        JudgingTask.objects.filter(status=JudgingTask.Status.OPEN, gold__isnull=True)
        .exclude(turn__task__contractor=user)
        .exclude(turn__judging_tasks__contractor=user)
        .order_by("created_at", "pk")
    )


def _gold_for(user: User, project: Project) -> GoldTurn | None:
    """An active gold turn of the project this contractor neither wrote nor judged."""
    return (
        GoldTurn.objects.filter(turn__task__project=project, is_active=True)
        .exclude(turn__task__contractor=user)
        .exclude(turn__judging_tasks__contractor=user)
        .order_by("created_at", "pk")
        .first()
    )


@transaction.atomic
def judging_task_next(*, user: User) -> JudgingTask | None:
    """The judging task this contractor works on now: the one they hold, else the next one,
    which is a gold turn in the project's gold share of their judging tasks. None when there
    is no judging work for them.

    Gold is served only where overlap work exists too, so a gold task arrives the way every
    judging task does and cannot be told apart.
    """
    _may_judge(user)
    held = JudgingTask.objects.filter(contractor=user, status=JudgingTask.Status.TAKEN).first()
    if held is not None:
        return held
    # SKIP LOCKED: two contractors asking at once get different tasks instead of one waiting.
    candidate = _open_overlap_for(user).select_for_update(skip_locked=True, of=("self",)).first()
    if candidate is None:
        return None
    project = candidate.project
    served = JudgingTask.objects.filter(contractor=user).count()
    if in_share(key=f"gold:{user.pk}:{served}", percent=project.gold_percent):
        gold = _gold_for(user, project)
        if gold is not None:
            candidate = JudgingTask.objects.create(
                project=project,
                turn=gold.turn,
                gold=gold,
                swapped=in_share(key=f"swap:{gold.turn_id}:{user.pk}", percent=50),
            )
    try:
        with transaction.atomic():
            candidate.take(by=user)
    except IntegrityError as exc:  # the same turn judged by them meanwhile (another tab)
        raise ConflictError("You already judged this pair; ask for the next one.") from exc
    return candidate


def judging_task_get_for_contractor(*, user: User, pk: int) -> JudgingTask:
    """A judging task of this contractor's; anyone else's is not found."""
    return get_object_or_404(
        JudgingTask.objects.select_related("turn__task__repository", "turn__task__project"),
        pk=pk,
        contractor=user,
    )


@dataclass(frozen=True)
class ShownCandidates:
    """The turn's candidates in the slots this judging task shows them in."""

    a: Any
    b: Any


def judging_task_candidates(*, judging_task: JudgingTask) -> ShownCandidates:
    by_slot = {c.slot: c for c in judging_task.turn.candidates.all()}
    if judging_task.swapped:
        return ShownCandidates(a=by_slot["B"], b=by_slot["A"])
    return ShownCandidates(a=by_slot["A"], b=by_slot["B"])


@transaction.atomic
def judging_task_submit(
    *, judging_task: JudgingTask, by: User, preference: Any, scores: Any, justification: str
) -> JudgingTask:
    """Record the judgement, as shown, and the pay at the project's judging rate."""
    _may_judge(by)
    judging_task = (
        JudgingTask.objects.select_for_update().select_related("project").get(pk=judging_task.pk)
    )
    if judging_task.contractor_id != by.pk:
        raise PermissionDeniedError("This judging task is another contractor's.")
    if judging_task.status != JudgingTask.Status.TAKEN:
        raise ConflictError("This judging task was already submitted.")
    project = judging_task.project
    if preference not in Preference.values:
        raise ApplicationError("The preference must be one of the seven points of the scale.")
    clean_scores = validate_scores(project=project, scores=scores)
    text = normalise_newlines(justification or "").strip()
    if len(text) < project.min_justification_chars:
        raise ApplicationError(
            f"The justification needs at least {project.min_justification_chars} characters."
        )
    if len(text) > 20_000:
        raise ApplicationError("The justification is limited to 20000 characters.")
    judging_task.submit(
        preference=preference,
        scores=clean_scores,
        justification=text,
        earned=project.pay_per_judging_task,
    )
    quality_agreement.agreement_counts_add(judging_task=judging_task)
    return judging_task


def judging_tasks_of(*, user: User) -> Any:
    """This contractor's judging tasks, newest first."""
    return JudgingTask.objects.filter(contractor=user).order_by("-created_at", "-pk")


def judging_work_available(*, user: User) -> int:
    """How many overlap tasks wait for this contractor (gold is never counted: it is mixed in)."""
    return _open_overlap_for(user).count()


def original_judgement(*, judging_task: JudgingTask) -> Judgement:
    """The accepted judgement the judging task is compared with."""
    task = judging_task.turn.task
    return Judgement.objects.get(turn=judging_task.turn, round=task.round)


def judging_tasks_release_stale() -> int:
    """Overlap pairs held past MARLIN_JUDGING_HOLD_HOURS go back to the open ones (the
    periodic job); returns how many. Gold is served to one contractor and blocks nobody."""
    cutoff = timezone.now() - timedelta(hours=settings.MARLIN_JUDGING_HOLD_HOURS)
    released = 0
    stale = JudgingTask.objects.filter(
        status=JudgingTask.Status.TAKEN, gold__isnull=True, taken_at__lt=cutoff
    )
    for judging_task in stale:
        try:
            judging_task.lapse()
        except InvalidTransition:  # submitted meanwhile: the judgement stands
            continue
        released += 1
    return released


def judging_task_record_activity(*, judging_task: JudgingTask, by: User, seconds: Any) -> None:
    """Add active time (the page visible and in use) while the holder judges the pair;
    credited as for a task's workspace (tasks.services.credited_seconds)."""
    if judging_task.contractor_id != by.pk or judging_task.status != JudgingTask.Status.TAKEN:
        return
    now = timezone.now()
    with transaction.atomic():
        locked = JudgingTask.objects.select_for_update().get(pk=judging_task.pk)
        seconds = credited_seconds(reported=seconds, last_beat=locked.last_heartbeat_at, now=now)
        JudgingTask.objects.filter(pk=locked.pk).update(
            active_seconds=F("active_seconds") + seconds, last_heartbeat_at=now
        )
