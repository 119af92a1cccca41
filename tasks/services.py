"""Task workflows: creating a task, generating its candidates, judging and submitting it."""

from __future__ import annotations

import logging
import random
from typing import Any

from django.conf import settings
from django.db import transaction

from marlin.exceptions import ApplicationError
from repos import services as repo_services
from repos.git_client import GitError
from repos.models import Repository
from tasks import generation
from tasks.models import Candidate, Judgement, Preference, Project, Task, TaskEvent, Turn

logger = logging.getLogger(__name__)

SCORE_MIN, SCORE_MAX = 1, 5


def _check_prompt(prompt: str) -> str:
    prompt = (prompt or "").strip()
    if not prompt:
        raise ApplicationError("The prompt is empty.")
    if len(prompt) > settings.MARLIN_PROMPT_MAX_CHARS:
        raise ApplicationError(
            f"The prompt is {len(prompt)} characters; the limit is {settings.MARLIN_PROMPT_MAX_CHARS}."
        )
    return prompt


@transaction.atomic
def task_create(
    *,
    contractor: Any,
    project: Project,
    repository: Repository,
    ref: str,
    title: str,
    kind: str,
    prompt: str,
) -> Task:
    """Create a task pinned to a commit, its first turn and two queued candidates.

    Both generation jobs are enqueued only when the transaction commits; on any error
    nothing is stored.
    """
    prompt = _check_prompt(prompt)
    if not project.is_active:
        raise ApplicationError(f"Project {project} is closed.")
    # Lock the repository row: the open-task quota must hold against concurrent creations.
    repository = Repository.objects.select_for_update().get(pk=repository.pk)
    if not repository.is_enabled:
        raise ApplicationError(f"{repository} is not available for new tasks.")
    if repository.max_open_tasks is not None:
        open_tasks = Task.objects.filter(repository=repository).exclude(status=Task.Status.ACCEPTED)
        if open_tasks.count() >= repository.max_open_tasks:
            raise ApplicationError(
                f"{repository} already has its maximum of {repository.max_open_tasks} open "
                "tasks; pick another repository."
            )
    try:
        sha = repo_services.repository_resolve_commit(repository=repository, ref=ref)
    except GitError as exc:
        raise ApplicationError(exc.message) from exc
    task = Task(
        project=project,
        repository=repository,
        contractor=contractor,
        base_ref=ref or repository.default_branch,
        commit_sha=sha,
        title=title.strip(),
        kind=kind,
    )
    task.full_clean()
    task.save()
    repo_services.repository_count_task(repository=repository)
    TaskEvent.objects.create(task=task, from_status="", to_status=task.status, actor=contractor)
    turn = Turn.objects.create(task=task, number=1, prompt=prompt)
    _turn_create_candidates(turn=turn, project=project)
    task.start_generation(by=contractor)
    return task


def _turn_create_candidates(*, turn: Turn, project: Project) -> None:
    # Slots are drawn per turn so position never reveals which endpoint answered.
    endpoints = [project.endpoint_a, project.endpoint_b]
    random.SystemRandom().shuffle(endpoints)
    candidates = [
        Candidate.objects.create(turn=turn, slot=slot, endpoint=endpoint)
        for slot, endpoint in zip(Candidate.Slot.values, endpoints, strict=True)
    ]
    for candidate in candidates:
        generation.enqueue(candidate.pk)


def validate_scores(*, project: Project, scores: Any) -> dict[str, dict[str, int]]:
    """Scores must be exactly {"A": {axis: 1..5}, "B": {...}} over the project's axes."""
    if not isinstance(scores, dict) or set(scores) != {"A", "B"}:
        raise ApplicationError("Scores are needed for both candidate A and candidate B.")
    axes = set(project.axis_keys)
    clean: dict[str, dict[str, int]] = {}
    for slot in ("A", "B"):
        given = scores[slot]
        if not isinstance(given, dict) or set(given) != axes:
            raise ApplicationError(
                f"Candidate {slot} needs a score on each of: {', '.join(project.axis_keys)}."
            )
        for axis, value in given.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise ApplicationError(f"Score {slot}/{axis} must be a whole number.")
            if not SCORE_MIN <= value <= SCORE_MAX:
                raise ApplicationError(
                    f"Score {slot}/{axis} must be between {SCORE_MIN} and {SCORE_MAX}."
                )
        clean[slot] = {axis: given[axis] for axis in project.axis_keys}
    return clean


@transaction.atomic
def task_submit(*, task: Task, by: Any, preference: int, scores: Any, justification: str) -> Task:
    """Record this round's judgement of the latest turn and send the task to review.

    A repeated submit of a task already under review changes nothing (double clicks).
    """
    task = Task.objects.select_for_update().select_related("project").get(pk=task.pk)
    if task.contractor_id != by.pk:
        raise ApplicationError("Only the task's contractor can submit it.")
    if task.status == Task.Status.SUBMITTED:
        return task
    if task.status != Task.Status.AWAITING_PREFERENCE:
        raise ApplicationError(
            f"This task cannot be submitted while it is {task.get_status_display().lower()}."
        )
    if preference not in Preference.values:
        raise ApplicationError("The preference must be one of the seven points of the scale.")
    clean_scores = validate_scores(project=task.project, scores=scores)
    justification = (justification or "").strip()
    minimum = task.project.min_justification_chars
    if len(justification) < minimum:
        raise ApplicationError(f"The justification needs at least {minimum} characters.")
    turn = task.turns.order_by("-number").first()
    if turn is None or turn.candidates.exclude(status=Candidate.Status.SUCCEEDED).exists():
        raise ApplicationError("Both candidates must be ready before the task is submitted.")
    judgement = Judgement(
        turn=turn,
        round=task.round,
        preference=preference,
        scores=clean_scores,
        justification=justification,
    )
    judgement.full_clean(validate_constraints=False)
    Judgement.objects.update_or_create(
        turn=turn,
        round=task.round,
        defaults={
            "preference": preference,
            "scores": clean_scores,
            "justification": justification,
        },
    )
    task.submit(by=by)
    return task


@transaction.atomic
def task_revise(*, task: Task, by: Any) -> Task:
    """Reopen a bounced task for its contractor, as a new review round."""
    task = Task.objects.select_for_update().get(pk=task.pk)
    if task.contractor_id != by.pk:
        raise ApplicationError("Only the task's contractor can revise it.")
    if task.status == Task.Status.AWAITING_PREFERENCE:
        return task
    task.revise(by=by)
    return task
