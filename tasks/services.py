"""Task workflows: creating a task, generating its candidates, judging and submitting it."""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from marlin.exceptions import ApplicationError, InvalidTransition
from repos import services as repo_services
from repos.git_client import GitError
from repos.models import Repository
from tasks import jobs, llm_client
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
        _enqueue_generation(candidate.pk)


def _enqueue_generation(candidate_id: int) -> None:
    # robust: a broker outage must not turn a committed request into a 500; the reaper
    # re-enqueues candidates left QUEUED.
    transaction.on_commit(lambda: jobs.candidate_generate_run.delay(candidate_id), robust=True)


def _build_request(candidate: Candidate) -> llm_client.GenerationRequest:
    turn = candidate.turn
    task = turn.task
    context = repo_services.repository_context(repository=task.repository, sha=task.commit_sha)
    system = (
        f"You are changing the repository {task.repository.full_name} at commit {task.commit_sha}. "
        f"Task ({task.get_kind_display()}): {task.title}. Answer with an explanation and a "
        f"unified diff against that commit.\n\nProject guidelines:\n{task.project.guidelines}"
    )
    return llm_client.GenerationRequest(
        system=system,
        messages=[{"role": "user", "content": turn.prompt}],
        paths=context.paths,
        files=context.files,
    )


def candidate_generate(*, candidate_id: int, job_id: str = "") -> Candidate | None:
    """Claim a queued candidate, ask its model, and store the answer exactly once.

    Returns None when the candidate was already claimed (a redelivered job). The model call
    runs outside any transaction; only the claim and the result are written.
    """
    candidate = Candidate.objects.select_related(
        "endpoint", "turn__task__repository", "turn__task__project"
    ).get(pk=candidate_id)
    try:
        candidate.claim(job_id=job_id)
    except InvalidTransition:
        logger.info("candidate %s already claimed (%s)", candidate.pk, candidate.status)
        return None
    endpoint = candidate.endpoint
    config = llm_client.EndpointConfig(
        provider=endpoint.provider,
        name=endpoint.name,
        model_id=endpoint.model_id,
        parameters=endpoint.parameters,
    )
    try:
        try:
            result = llm_client.generate(endpoint=config, request=_build_request(candidate))
        except (llm_client.ProviderError, GitError) as exc:
            logger.warning("candidate %s failed: %s", candidate.pk, exc)
            candidate.fail(reason=exc.message)
        else:
            candidate.succeed(explanation=result.explanation, diff=result.diff)
    except InvalidTransition:
        # Another run of this candidate finished first (or the reaper failed it): keep theirs.
        logger.info("candidate %s was finished by another run", candidate.pk)
        return None
    turn_settle(turn_id=candidate.turn_id)
    return candidate


def generation_reap_stale(*, now: datetime | None = None) -> dict[str, int]:
    """Fail candidates RUNNING past every time limit; re-enqueue those left QUEUED.

    A RUNNING row older than the job's hard limit has no live job behind it (the limit
    would have killed it). A QUEUED row whose message was lost (broker outage after
    commit) is sent again; its updated_at moves on so it is not re-sent every minute.
    """
    now = now or timezone.now()
    stale_running = Candidate.objects.filter(
        status=Candidate.Status.RUNNING,
        started_at__lt=now - timedelta(seconds=settings.MARLIN_GENERATION_STALE_SECONDS),
    )
    failed = 0
    for candidate in stale_running:
        try:
            candidate.fail(reason="Generation took too long and was stopped; retry it.")
        except InvalidTransition:
            continue
        failed += 1
        turn_settle(turn_id=candidate.turn_id)
    requeued = 0
    stale_queued = Candidate.objects.filter(
        status=Candidate.Status.QUEUED,
        updated_at__lt=now - timedelta(seconds=settings.MARLIN_QUEUED_STALE_SECONDS),
    ).values_list("pk", flat=True)
    for candidate_id in stale_queued:
        Candidate.objects.filter(pk=candidate_id).update(updated_at=now)
        jobs.candidate_generate_run.delay(candidate_id)
        requeued += 1
    return {"failed": failed, "requeued": requeued}


def candidate_fail_unexpectedly(*, candidate_id: int, error: Exception) -> None:
    """Fail a candidate whose job crashed, with a reason a person can read; then settle the turn."""
    logger.error("generation of candidate %s crashed: %r", candidate_id, error)
    candidate = Candidate.objects.get(pk=candidate_id)
    if candidate.is_terminal:
        return
    try:
        candidate.fail(reason="Generation stopped because of an internal error; retry it.")
    except InvalidTransition:
        return
    turn_settle(turn_id=candidate.turn_id)


@transaction.atomic
def turn_settle(*, turn_id: int) -> None:
    """Move the task on once every candidate of the turn has finished.

    The task row is locked so two candidates finishing at once settle it once.
    """
    turn = Turn.objects.get(pk=turn_id)
    task = Task.objects.select_for_update().get(pk=turn.task_id)
    if task.status != Task.Status.GENERATING:
        return
    statuses = list(turn.candidates.values_list("status", flat=True))
    if any(status in (Candidate.Status.QUEUED, Candidate.Status.RUNNING) for status in statuses):
        return
    if all(status == Candidate.Status.SUCCEEDED for status in statuses):
        task.finish_generation()
    else:
        task.fail_generation(reason="A candidate could not be generated.")


@transaction.atomic
def candidate_retry(*, candidate: Candidate, by: Any) -> Candidate:
    """Re-run one failed candidate; the other candidate and the task's data are untouched."""
    task = Task.objects.select_for_update().get(pk=candidate.turn.task_id)
    candidate.requeue()
    if task.status == Task.Status.GENERATION_FAILED:
        task.start_generation(by=by)
    _enqueue_generation(candidate.pk)
    return candidate


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
