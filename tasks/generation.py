"""The generation pipeline: claim a candidate, ask its model, read the answer, store it once.

Jobs (tasks/jobs.py) call these with ids. Model calls run outside transactions; only the
claim and the result touch the database. Transient provider errors are retried by the job
with backoff; the candidate stays RUNNING under the same job id meanwhile.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from marlin.exceptions import ApplicationError, InvalidTransition
from marlin.reaping import remove_stale_worktrees, resend_stale_queued
from repos import git_client
from repos import services as repo_services
from tasks import answers, jobs, llm_client, prompting
from tasks.diff_identity import same_change
from tasks.models import Candidate, Judgement, ModelEndpoint, Task, Turn

logger = logging.getLogger(__name__)

TRUNCATION_NOTE = "\n\n[The answer was longer than Marlin keeps and was cut here.]"


@dataclass(frozen=True)
class RetryLater(Exception):
    """Ask the job to run again after `countdown` seconds (backoff, or the endpoint is busy)."""

    countdown: float


def enqueue(candidate_id: int) -> None:
    """Send the candidate's job once the surrounding transaction commits.

    robust: a broker outage must not turn a committed request into a 500; the reaper
    re-sends candidates left QUEUED.
    """
    transaction.on_commit(lambda: jobs.candidate_generate_run.delay(candidate_id), robust=True)


def _claim(candidate: Candidate, job_id: str) -> None:
    """Claim under the endpoint's row lock, so its concurrency cap holds across workers.

    Raises RetryLater while the endpoint is at its cap (the row stays QUEUED: no attempt
    spent), and fails the candidate when its attempts are used up, so a job whose worker
    keeps dying is not redelivered (and billed) forever.
    """
    give_up = ""
    busy = False
    with transaction.atomic():
        endpoint = ModelEndpoint.objects.select_for_update().get(pk=candidate.endpoint_id)
        is_redelivery = candidate.status == Candidate.Status.RUNNING and candidate.job_id == job_id
        if is_redelivery and candidate.attempts >= settings.MARLIN_GENERATION_MAX_ATTEMPTS:
            give_up = "Generation kept stopping before it finished; retry it."
        elif not is_redelivery and candidate.status == Candidate.Status.QUEUED:
            if not endpoint.is_enabled:
                give_up = "The model is not available right now."
            elif (
                Candidate.objects.filter(endpoint=endpoint, status=Candidate.Status.RUNNING).count()
                >= endpoint.max_concurrency
            ):
                # Touch the row so the reaper sees a live wait, not a lost message.
                Candidate.objects.filter(pk=candidate.pk).update(updated_at=timezone.now())
                busy = True
        if not give_up and not busy:
            candidate.claim(job_id=job_id)
    if busy:
        raise RetryLater(countdown=1.0 + _jitter() * 2)
    if give_up:
        # Outside the claim's transaction, which an exception would roll back.
        candidate.fail(reason=give_up)
        raise _GaveUp


class _GaveUp(Exception):
    """The claim failed the candidate instead (disabled endpoint, attempts used up)."""


def _jitter() -> float:
    """A number in [0, 1) (secrets, so linters need no exemption for timing jitter)."""
    return secrets.randbelow(10_000) / 10_000


def backoff_seconds(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter; a server's Retry-After wins when it says more."""
    base = settings.MARLIN_GENERATION_BACKOFF_SECONDS
    ceiling = min(settings.MARLIN_GENERATION_BACKOFF_MAX_SECONDS, base * 2 ** (attempt - 1))
    delay = ceiling / 2 + _jitter() * ceiling / 2
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.MARLIN_GENERATION_BACKOFF_MAX_SECONDS))
    return delay


def _read_answer(candidate: Candidate, answer: llm_client.ProviderAnswer) -> dict[str, Any]:
    task = candidate.turn.task
    limit = settings.MARLIN_ANSWER_MAX_CHARS
    text = answer.text
    truncated = len(text) > limit or (answer.diff is not None and len(answer.diff) > limit)
    if len(text) > limit:
        text = text[:limit] + TRUNCATION_NOTE
    if answer.diff is not None:
        parsed = answers.ParsedAnswer(explanation=text.strip(), diff=answer.diff[:limit])
    else:

        def read_original(path: str) -> str | None:
            try:
                return repo_services.repository_read_text(
                    repository=task.repository, sha=task.commit_sha, path=path,
                    max_bytes=settings.MARLIN_BROWSE_MAX_FILE_BYTES,
                )  # fmt: skip
            except git_client.GitError:
                return None

        parsed = answers.parse(text, read_original=read_original)
    if len(parsed.diff) > limit:
        truncated = True
        parsed = answers.ParsedAnswer(explanation=parsed.explanation, diff=parsed.diff[:limit])
    apply_error = ""
    if parsed.diff.strip():
        apply_error = git_client.check_patch(
            repo_services.repository_cache_path(task.repository),
            task.commit_sha,
            parsed.diff,
            allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES,
        )
    return {
        "raw_answer": answer.text[: limit * 2],
        "explanation": parsed.explanation,
        "diff": parsed.diff,
        "is_truncated": truncated,
        "applies_cleanly": bool(parsed.diff.strip()) and not apply_error,
        "apply_error": apply_error
        or ("" if parsed.diff.strip() else "The answer changes nothing."),
        "input_tokens": _token_count(answer.input_tokens),
        "output_tokens": _token_count(answer.output_tokens),
    }


def _token_count(value: object) -> int | None:
    """A server's token count if it is a sane whole number; a fake or broken one is dropped."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31:
        return value
    return None


def candidate_generate(*, candidate_id: int, job_id: str = "") -> Candidate | None:
    """Claim a candidate, ask its model, and store the answer exactly once.

    Returns None when there was nothing to do (another job holds or finished the row).
    Raises RetryLater for a transient failure with attempts left, or a busy endpoint.
    """
    candidate = Candidate.objects.select_related(
        "endpoint", "turn__task__repository", "turn__task__project"
    ).get(pk=candidate_id)
    try:
        _claim(candidate, job_id)
    except InvalidTransition:
        logger.info("candidate %s already claimed (%s)", candidate.pk, candidate.status)
        return None
    except _GaveUp:
        turn_settle(turn_id=candidate.turn_id)
        return candidate
    endpoint = candidate.endpoint
    config = llm_client.EndpointConfig(
        provider=endpoint.provider,
        name=endpoint.name,
        model_id=endpoint.model_id,
        parameters=endpoint.parameters,
        base_url=endpoint.base_url,
        api_key_env=endpoint.api_key_env,
    )
    try:
        try:
            request = prompting.build_request(candidate)
            sent_prompt = prompting.sent_prompt_keep(request)
            answer = llm_client.generate(endpoint=config, request=request)
            result = _read_answer(candidate, answer)
        except llm_client.ProviderError as exc:
            if exc.transient and candidate.attempts < settings.MARLIN_GENERATION_MAX_ATTEMPTS:
                # Shown while waiting; the row stays RUNNING under this job id.
                Candidate.objects.filter(pk=candidate.pk).update(error=exc.message)
                raise RetryLater(
                    countdown=backoff_seconds(candidate.attempts, exc.retry_after)
                ) from exc
            candidate.fail(reason=exc.message)
        except answers.AnswerError as exc:
            # The model answered, but with no usable change: asking again spends tokens on
            # what is not a transient fault; the contractor can retry it.
            candidate.fail(reason=str(exc))
        except git_client.GitError as exc:
            candidate.fail(reason=exc.message)
        else:
            candidate.succeed(**result, sent_prompt=sent_prompt)
    except InvalidTransition:
        # Another run of this candidate finished first (or the reaper failed it): keep theirs.
        logger.info("candidate %s was finished by another run", candidate.pk)
        return None
    turn_settle(turn_id=candidate.turn_id)
    return candidate


def candidate_fail(*, candidate_id: int, reason: str) -> None:
    """Fail a candidate whose job gave up (crash, time limit), then settle its turn."""
    candidate = Candidate.objects.get(pk=candidate_id)
    if candidate.is_terminal:
        return
    try:
        candidate.fail(reason=reason)
    except InvalidTransition:
        return
    turn_settle(turn_id=candidate.turn_id)


def generation_reap_stale(*, now: datetime | None = None) -> dict[str, int]:
    """Fail candidates RUNNING past every time limit; re-enqueue those left QUEUED.

    A RUNNING row older than the job's hard limit plus its retries' backoff has no live job
    behind it. A QUEUED row whose message was lost (broker outage after commit) is sent
    again; its updated_at moves on so it is not re-sent every minute.
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
    remove_stale_worktrees()
    requeued = resend_stale_queued(
        Candidate.objects.filter(status=Candidate.Status.QUEUED),
        now=now,
        send=jobs.candidate_generate_run.delay,
    )
    return {"failed": failed, "requeued": requeued}


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
        diffs = list(turn.candidates.values_list("diff", flat=True))
        identical = len(diffs) == 2 and same_change(*diffs)
        Turn.objects.filter(pk=turn.pk).update(has_identical_candidates=identical)
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
    enqueue(candidate.pk)
    return candidate


@transaction.atomic
def candidate_regenerate(*, candidate: Candidate, by: Any) -> Candidate:
    """Ask one of two identical candidates' models again, so the turn compares two changes.

    Only the contractor, only the latest turn while it is being judged, and only before any
    review saw it (earlier rounds keep the candidates they judged). The other candidate and
    the conversation are untouched.
    """
    task = Task.objects.select_for_update().get(pk=candidate.turn.task_id)
    if task.contractor_id != by.pk:
        raise ApplicationError("Only the task's contractor can regenerate its candidates.")
    turn = Turn.objects.get(pk=candidate.turn_id)
    latest = task.turns.order_by("-number").first()
    if task.status != Task.Status.AWAITING_PREFERENCE or turn.pk != latest.pk:
        raise ApplicationError(
            "Only the candidates of the turn you are judging can be regenerated."
        )
    if not turn.has_identical_candidates:
        raise ApplicationError(
            "Only one of two candidates that made the same change can be regenerated."
        )
    if Judgement.objects.filter(turn=turn, round__lt=task.round).exists():
        raise ApplicationError("This turn was already reviewed; its candidates stay as they were.")
    candidate = Candidate.objects.get(pk=candidate.pk)
    candidate.regenerate()
    Turn.objects.filter(pk=turn.pk).update(has_identical_candidates=None)
    task.regenerate(by=by, slot=candidate.slot)
    enqueue(candidate.pk)
    return candidate
