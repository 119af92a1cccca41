"""The generation pipeline: claim a candidate, ask its model, read the answer, store it once.

Jobs (tasks/jobs.py) call these with ids. Model calls run outside transactions; only the
claim and the result touch the database. Transient provider errors are retried by the job
with backoff; the candidate stays RUNNING under the same job id meanwhile.

A running job proves it is alive by renewing the candidate's lease from a heartbeat thread.
A lease that runs out means the job's worker died (SIGKILL, OOM, a lost machine): the reaper
puts the candidate back in the queue for a new job, and only the job holding the row may
write its result, so the dead job's message, redelivered by the broker, changes nothing.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from marlin import health
from marlin.db_retry import close_broken_connection, retry_on_disconnect
from marlin.exceptions import ApplicationError, InvalidTransition
from marlin.reaping import remove_stale_worktrees, resend_stale_queued
from repos import git_client
from repos import services as repo_services
from tasks import answers, evidence_services, failure_detail, jobs, llm_client, prompting
from tasks.diff_identity import same_change
from tasks.models import Candidate, Judgement, ModelEndpoint, Task, Turn
from tasks.providers.base import EndpointConfig, ProviderAnswer, ProviderError

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

TRUNCATION_NOTE = "\n\n[The answer was longer than Marlin keeps and was cut here.]"
# Shown on a candidate sent again because the worker running it died.
RESTARTED_NOTE = "The worker generating this candidate stopped; Marlin is running it again."


def waiting_reason(message: str) -> str:
    """What a candidate shows while its job waits to try a transient failure again."""
    return f"{message} Marlin will try again shortly."


def final_reason(message: str, attempts: int) -> str:
    """What a failed candidate shows once its attempts are used up: no promise of a retry."""
    tries = "once" if attempts == 1 else f"{attempts} times"
    return f"{message} Marlin tried {tries} and stopped; you can retry this candidate."


@dataclass(frozen=True)
class RetryLater(Exception):
    """Ask the job to run again after `countdown` seconds (backoff, or the endpoint is busy)."""

    countdown: float


def enqueue(candidate_id: int) -> None:
    """Send the candidate's job once the surrounding transaction commits.

    A broker outage must not turn a committed request into a 500: the row stays QUEUED,
    the page says jobs are delayed (marlin.health), and the reaper re-sends it.
    """

    def send() -> None:
        if not health.job_send(lambda: jobs.candidate_generate_run.delay(candidate_id)):
            # Its message is lost for sure: date the row back so the reaper's first sweep
            # after the broker returns sends it, not MARLIN_QUEUED_STALE_SECONDS later.
            waited = timedelta(seconds=settings.MARLIN_QUEUED_STALE_SECONDS + 1)
            # Only while still QUEUED: a worker that claimed it meanwhile keeps its row.
            Candidate.objects.filter(pk=candidate_id, status=Candidate.Status.QUEUED).update(
                updated_at=timezone.now() - waited
            )

    transaction.on_commit(send, robust=True)


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
            give_up = final_reason(
                "Generation kept stopping before it finished.", candidate.attempts
            )
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


class _Heartbeat:
    """Renews the candidate's lease from a thread while the job works on it.

    A job killed with its worker stops renewing, so the reaper can tell it from a slow one
    within MARLIN_GENERATION_HEARTBEAT_STALE_SECONDS. The thread stops by itself once the row
    is no longer this job's (finished, or handed to another job).
    """

    def __init__(self, candidate: Candidate, job_id: str) -> None:
        self._candidate = candidate
        self._job_id = job_id
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"candidate-{candidate.pk}-heartbeat", daemon=True
        )

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            while not self._stop.wait(settings.MARLIN_GENERATION_HEARTBEAT_SECONDS):
                try:
                    held = self._candidate.renew_lease(
                        job_id=self._job_id,
                        seconds=settings.MARLIN_GENERATION_HEARTBEAT_STALE_SECONDS,
                    )
                except DatabaseError:
                    # The next beat may get through (on a new connection: this one may be
                    # dead); the lease leaves room for missed ones.
                    logger.warning("candidate %s: lease not renewed", self._candidate.pk,
                                   exc_info=True)  # fmt: skip
                    close_broken_connection()
                    continue
                if not held:
                    return
        finally:
            # This thread's own connection; the job's connection is untouched.
            connections.close_all()


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


def _read_answer(candidate: Candidate, answer: ProviderAnswer) -> dict[str, Any]:
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
            max_bytes=settings.MARLIN_CLONE_MAX_MB * 1024 * 1024,
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
    config = _endpoint_config(candidate.endpoint)
    try:
        try:
            with _Heartbeat(candidate, job_id):
                request = prompting.build_request(candidate)
                sent_prompt = prompting.sent_prompt_keep(request)
                answer = llm_client.generate(endpoint=config, request=request)
                result = _read_answer(candidate, answer)
        except ProviderError as exc:
            interrupted = _time_limit_cause(exc)
            if interrupted is not None:
                # An SDK turned the job's soft time limit into a connection error; it is
                # the job's limit, not a fault worth retrying.
                raise interrupted from exc
            # For admins: the status, exit code or stderr the contractor's words leave out.
            detail = failure_detail.scrub(
                exc.detail, secrets=failure_detail.endpoint_secrets(config)
            )
            if exc.transient and candidate.attempts < settings.MARLIN_GENERATION_MAX_ATTEMPTS:
                countdown = backoff_seconds(candidate.attempts, exc.retry_after)
                # Shown while waiting; the row stays RUNNING under this job id, its lease
                # long enough for the retry to come back and renew it.
                lease = countdown + settings.MARLIN_GENERATION_HEARTBEAT_STALE_SECONDS
                # Only while this job holds the row: one the reaper re-queued is not marked.
                Candidate.objects.filter(
                    pk=candidate.pk, status=Candidate.Status.RUNNING, job_id=job_id
                ).update(
                    error=waiting_reason(exc.message),
                    failure_detail=detail,
                    lease_expires_at=timezone.now() + timedelta(seconds=lease),
                )
                raise RetryLater(countdown=countdown) from exc
            reason = exc.message
            if exc.transient:
                reason = final_reason(exc.message, candidate.attempts)
            _store(candidate, lambda: candidate.fail(reason=reason, detail=detail, job_id=job_id))
        except answers.AnswerError as exc:
            # The model answered, but with no usable change: asking again spends tokens on
            # what is not a transient fault; the contractor can retry it.
            unusable = str(exc)
            _store(candidate, lambda: candidate.fail(reason=unusable, job_id=job_id))
        except git_client.GitError as exc:
            refused = exc.message
            _store(candidate, lambda: candidate.fail(reason=refused, job_id=job_id))
        else:
            _store(
                candidate,
                lambda: candidate.succeed(**result, sent_prompt=sent_prompt, job_id=job_id),
            )
    except InvalidTransition:
        # Another run of this candidate finished first (or the reaper failed it): keep theirs.
        # Settling again is harmless, and needed when it was this run's own write whose
        # commit went through just as the connection died.
        logger.info("candidate %s was finished by another run", candidate.pk)
        _settle(candidate)
        return None
    _settle(candidate)
    if candidate.status == Candidate.Status.SUCCEEDED:
        _enqueue_diff_build(candidate.pk)
    return candidate


def _enqueue_diff_build(candidate_id: int) -> None:
    """Build the candidate's diff HTML in a follow-up job, once its row is committed. Only a
    head start: a view that finds nothing in the cache builds it the same way."""

    def send() -> None:
        health.job_send(lambda: jobs.candidate_diff_build_run.delay(candidate_id))

    transaction.on_commit(send, robust=True)


def candidate_diff_build(*, candidate_id: int) -> None:
    """Build and cache a finished candidate's diff HTML (tasks.diff_html), if it still is."""
    from tasks.diff_html import candidate_diff_prebuild  # the viewer's module, not the job's

    candidate = (
        Candidate.objects.select_related(
            "endpoint", "turn__task__first_endpoint", "turn__task__second_endpoint",
            "turn__task__project",
        )
        .prefetch_related("turn__task__project__pool__endpoint")
        .filter(pk=candidate_id)
        .first()
    )  # fmt: skip
    if candidate is not None:
        candidate_diff_prebuild(candidate)


def _endpoint_config(endpoint: ModelEndpoint) -> EndpointConfig:
    return EndpointConfig(
        provider=endpoint.provider,
        name=endpoint.name,
        model_id=endpoint.model_id,
        parameters=endpoint.parameters,
        base_url=endpoint.base_url,
        api_key_env=endpoint.api_key_env,
    )


def _store(candidate: Candidate, write) -> None:
    """Write a job's outcome, riding out a database restart (the answer is paid for)."""

    def fresh_write() -> None:
        # A try that failed may have moved the object in memory, or even committed.
        candidate.refresh_from_db(fields=["status", "job_id", "lease_expires_at"])
        write()

    retry_on_disconnect(fresh_write, what=f"storing candidate {candidate.pk}")


def _settle(candidate: Candidate) -> None:
    retry_on_disconnect(
        lambda: turn_settle(turn_id=candidate.turn_id), what=f"settling turn {candidate.turn_id}"
    )


def _time_limit_cause(exc: BaseException) -> BaseException | None:
    """The job's soft time limit, if it is what caused `exc` (directly or further down)."""
    seen: set[int] = set()
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, jobs.SoftTimeLimitExceeded):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def candidate_fail(
    *, candidate_id: int, reason: str, detail: str = "", job_id: str | None = None
) -> None:
    """Fail a candidate whose job gave up (crash, time limit), then settle its turn.

    `detail` (the exception, for admins) is scrubbed of secrets before it is kept. With
    `job_id`, only while that job holds the row: a job that was presumed dead and replaced
    must not fail its successor's run.
    """
    candidate = Candidate.objects.select_related("endpoint").get(pk=candidate_id)
    if candidate.is_terminal:
        return
    secrets = failure_detail.endpoint_secrets(_endpoint_config(candidate.endpoint))
    try:
        candidate.fail(
            reason=reason, detail=failure_detail.scrub(detail, secrets=secrets), job_id=job_id
        )
    except InvalidTransition:
        return
    turn_settle(turn_id=candidate.turn_id)


def _candidate_rescue(*, candidate_id: int, now: datetime) -> str:
    """Send a candidate whose job's lease ran out to a new job, or fail it if it has no
    attempts left. Returns "requeued", "failed" or "" (renewed or finished meanwhile).

    The row lock orders this against the job's own writes: a job that was only slow either
    wrote first (nothing to do here) or finds the row handed on and writes nothing.
    """
    with transaction.atomic():
        candidate = Candidate.objects.select_for_update().get(pk=candidate_id)
        lease = candidate.lease_expires_at
        if candidate.status != Candidate.Status.RUNNING or lease is None or lease >= now:
            return ""
        if candidate.attempts >= settings.MARLIN_GENERATION_MAX_ATTEMPTS:
            candidate.fail(
                reason=final_reason("Generation kept stopping before it finished.",
                                    candidate.attempts),
                job_id=candidate.job_id,
            )  # fmt: skip
            outcome = "failed"
        else:
            logger.warning("candidate %s: job %s stopped renewing its lease; sending it again",
                           candidate.pk, candidate.job_id)  # fmt: skip
            candidate.release(job_id=candidate.job_id, note=RESTARTED_NOTE)
            # Sent once this transaction commits; if the broker is down the row waits
            # QUEUED and is sent again by resend_stale_queued.
            enqueue(candidate.pk)
            outcome = "requeued"
    if outcome == "failed":
        turn_settle(turn_id=candidate.turn_id)
    return outcome


def generation_reap_stale(*, now: datetime | None = None) -> dict[str, int]:
    """Re-run candidates whose job died; fail those past every limit; re-send lost QUEUED ones.

    A RUNNING row whose lease ran out has no live job behind it (the heartbeat stopped): it
    goes back to the queue for a new job while attempts remain ("restarted"). A RUNNING row
    without a lease (claimed before leases existed) is failed once older than the job's hard
    limit. A QUEUED row whose message was lost (broker outage after commit) is sent again;
    its updated_at moves on so it is not re-sent every minute.
    """
    now = now or timezone.now()
    restarted: list[int] = []
    failed = 0
    expired = Candidate.objects.filter(
        status=Candidate.Status.RUNNING, lease_expires_at__lt=now
    ).values_list("pk", flat=True)
    for candidate_id in list(expired):
        outcome = _candidate_rescue(candidate_id=candidate_id, now=now)
        if outcome == "requeued":
            restarted.append(candidate_id)
        failed += outcome == "failed"
    stale_running = Candidate.objects.filter(
        status=Candidate.Status.RUNNING,
        lease_expires_at__isnull=True,
        started_at__lt=now - timedelta(seconds=settings.MARLIN_GENERATION_STALE_SECONDS),
    )
    for candidate in stale_running:
        try:
            candidate.fail(reason="Generation took too long and was stopped; retry it.")
        except InvalidTransition:
            continue
        failed += 1
        turn_settle(turn_id=candidate.turn_id)
    remove_stale_worktrees()
    requeued = resend_stale_queued(
        # Just sent by the loop above: not a second time.
        Candidate.objects.filter(status=Candidate.Status.QUEUED).exclude(pk__in=restarted),
        now=now,
        send=jobs.candidate_generate_run.delay,
    )
    return {"failed": failed, "requeued": requeued, "restarted": len(restarted)}


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
        evidence_services.evidence_request(turn=turn)
    else:
        task.fail_generation(reason="A candidate could not be generated.")


@transaction.atomic
def candidate_retry(*, candidate: Candidate, by: User) -> Candidate:
    """Re-run one failed candidate; the other candidate and the task's data are untouched."""
    task = Task.objects.select_for_update().get(pk=candidate.turn.task_id)
    candidate.requeue()
    if task.status == Task.Status.GENERATION_FAILED:
        task.start_generation(by=by)
    enqueue(candidate.pk)
    return candidate


@transaction.atomic
def candidate_regenerate(*, candidate: Candidate, by: User) -> Candidate:
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
