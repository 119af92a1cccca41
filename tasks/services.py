"""Task workflows: creating a task, generating its candidates, judging and submitting it."""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from marlin.exceptions import ApplicationError, ConflictError
from marlin.text import normalise_newlines
from repos import git_client
from repos import services as repo_services
from repos.git_client import GitError
from repos.models import Repository
from reviews import quality_flags
from tasks import evidence, generation_services, pool
from tasks.contradictions import axis_weights, judgement_warnings
from tasks.focus_files import FocusFilesError, clean_focus_files
from tasks.models import (
    CLOSED_STATES,
    Candidate,
    Judgement,
    JudgementDraft,
    Preference,
    Project,
    Submission,
    Task,
    TaskEvent,
    Turn,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

SCORE_MIN, SCORE_MAX = 1, 5


def _check_prompt(prompt: str) -> str:
    prompt = normalise_newlines(prompt or "").strip()
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
    contractor: User,
    project: Project,
    repository: Repository,
    ref: str,
    title: str,
    kind: str,
    prompt: str,
    focus_files: list[str] | None = None,
    acceptance_tests: list[dict[str, str]] | None = None,
) -> Task:
    """Create a task pinned to a commit, its first turn and two queued candidates.

    `focus_files`: repository paths the contractor names as the ones that matter; each must
    exist at the pinned commit. `acceptance_tests`: [{path, content}] test files run on each
    candidate by the evidence checks; stored on the task and never sent to the models. Both
    generation jobs are enqueued only when the transaction commits; on any error nothing is
    stored.
    """
    prompt = _check_prompt(prompt)
    focus_files = clean_focus_files(focus_files)
    try:
        acceptance_tests = evidence.acceptance_tests_clean(acceptance_tests)
    except ValidationError as exc:
        raise ApplicationError(" ".join(exc.messages)) from exc
    if not project.is_active:
        raise ApplicationError(f"Project {project} is closed.")
    first_endpoint, second_endpoint = pool.pair_draw(project=project)
    # Lock the repository row: the open-task quota must hold against concurrent creations.
    repository = Repository.objects.select_for_update().get(pk=repository.pk)
    if not repository.is_enabled:
        raise ApplicationError(f"{repository} is not available for new tasks.")
    if repository.max_open_tasks is not None:
        open_tasks = Task.objects.filter(repository=repository).exclude(status__in=CLOSED_STATES)
        if open_tasks.count() >= repository.max_open_tasks:
            raise ApplicationError(
                f"{repository} already has its maximum of {repository.max_open_tasks} open "
                "tasks; pick another repository."
            )
    try:
        sha = repo_services.repository_resolve_commit(repository=repository, ref=ref)
    except GitError as exc:
        raise ApplicationError(exc.message) from exc
    _check_focus_files_exist(repository=repository, sha=sha, paths=focus_files)
    task = Task(
        project=project,
        repository=repository,
        contractor=contractor,
        base_ref=ref or repository.default_branch,
        commit_sha=sha,
        # One line: titles appear in lists, notifications and e-mail subjects.
        title=" ".join(title.split()),
        kind=kind,
        focus_files=focus_files,
        acceptance_tests=acceptance_tests,
        first_endpoint=first_endpoint,
        second_endpoint=second_endpoint,
    )
    task.full_clean()
    task.save()
    repo_services.repository_count_task(repository=repository)
    TaskEvent.objects.create(task=task, from_status="", to_status=task.status, actor=contractor)
    turn = Turn.objects.create(task=task, number=1, prompt=prompt)
    _turn_create_candidates(turn=turn, task=task)
    task.start_generation(by=contractor)
    return task


def _check_focus_files_exist(*, repository: Repository, sha: str, paths: list[str]) -> None:
    # One ls-tree per path on the local clone: a few milliseconds each, at most 50 of them.
    for path in paths:
        try:
            git_client.path_kind(
                repo_services.repository_cache_path(repository),
                sha,
                path,
                allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES,
            )
        except GitError as exc:
            raise FocusFilesError(
                f"The file that matters {path!r} is not in the repository at the pinned "
                f"commit {sha[:12]}."
            ) from exc


def _check_pair_enabled(task: Task) -> None:
    # A pair retired from the pool still finishes its tasks; a disabled endpoint answers no one.
    if not (task.first_endpoint.is_enabled and task.second_endpoint.is_enabled):
        raise ApplicationError(pool.PAUSED)


def _turn_create_candidates(*, turn: Turn, task: Task) -> None:
    # The pair is the task's for every turn; slots are drawn per turn so position never
    # reveals which endpoint answered.
    endpoints = [task.first_endpoint, task.second_endpoint]
    random.SystemRandom().shuffle(endpoints)
    candidates = [
        Candidate.objects.create(turn=turn, slot=slot, endpoint=endpoint)
        for slot, endpoint in zip(Candidate.Slot.values, endpoints, strict=True)
    ]
    for candidate in candidates:
        generation_services.enqueue(candidate.pk)


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


class JudgementNeedsConfirmation(ApplicationError):
    """The judgement looks self-contradictory; the contractor must confirm it as it is."""

    def __init__(self, warnings: list[str]) -> None:
        super().__init__(
            "Please check the warnings below, then confirm or change your judgement.",
            extra={"warnings": warnings},
        )
        self.warnings = warnings


def _verdict_fields(*, task: Task, turn: Turn, verdict: dict[str, Any]) -> dict[str, Any]:
    """A turn's judgement checked against the project's scale and rubric, with its warnings
    (contradictions between scores and preference), not yet saved."""
    preference = verdict.get("preference")
    if preference not in Preference.values:
        raise ApplicationError("The preference must be one of the seven points of the scale.")
    if turn.has_identical_candidates and preference != Preference.ABOUT_THE_SAME:
        raise ApplicationError(
            f"Both candidates of turn {turn.number} made the same change, so the preference is "
            "“About the same”; regenerate one of them to compare two different changes."
        )
    clean_scores = validate_scores(project=task.project, scores=verdict.get("scores"))
    weights = axis_weights(task.project.rubric_axes)
    return {
        "preference": preference,
        "scores": clean_scores,
        "justification": normalise_newlines(verdict.get("justification") or "").strip(),
        "warnings": judgement_warnings(preference=preference, scores=clean_scores, weights=weights),
    }


_TURNS_FOR_JUDGING = """
SELECT t.id, t.task_id, t.number, t.has_identical_candidates,
       EXISTS (SELECT 1 FROM tasks_judgement j
                WHERE j.turn_id = t.id AND j.round = %(round)s) AS judged,
       EXISTS (SELECT 1 FROM tasks_candidate c
                WHERE c.turn_id = t.id AND c.status <> %(ready)s) AS unready
  FROM tasks_turn t
 WHERE t.task_id = %(task)s
 ORDER BY t.number
"""


def _turns_for_judging(task: Task) -> dict[int, Turn]:
    """The task's turns by number, in one query and without their prompts, each with
    `judged` (it has a judgement this round) and `unready` (a candidate of it has not
    succeeded). Read under the task's lock: judgements are only written under it.

    Fixed text rather than the ORM: the two EXISTS compiled anew each submit cost ~1 ms of
    Django CPU, eight times the statement's own cost (bench.submit_load).
    """
    params = {"round": task.round, "ready": Candidate.Status.SUCCEEDED.value, "task": task.pk}
    turns = Turn.objects.raw(_TURNS_FOR_JUDGING, params)
    return {turn.number: turn for turn in turns}


def _judge_turns(
    *,
    task: Task,
    turns: dict[int, Turn],
    latest: dict[str, Any],
    earlier: dict[int, dict[str, Any]] | None = None,
    confirm_warnings: bool = False,
) -> list[Judgement]:
    """Save this round's judgement of the latest turn and, in a revision round, of any earlier
    turn the contractor changed. All are checked before any is saved; saving twice is harmless.
    `turns`: _turns_for_judging's.

    Raises JudgementNeedsConfirmation when a judgement contradicts itself and the contractor
    has not confirmed it; confirmed warnings are stored with their judgement.
    """
    latest_turn = turns[max(turns)] if turns else None
    earlier = earlier or {}
    if earlier and task.round <= 1:
        raise ApplicationError("Earlier turns can be changed only when revising a bounced task.")
    unknown = sorted(n for n in earlier if n not in turns or turns[n] is latest_turn)
    if unknown:
        raise ApplicationError(f"There is no earlier turn {unknown[0]} to judge.")
    planned = [(latest_turn, latest)] + [(turns[n], earlier[n]) for n in sorted(earlier)]
    checked = [
        (turn, _verdict_fields(task=task, turn=turn, verdict=verdict))
        for turn, verdict in planned
        if turn is not None
    ]
    named = len(checked) > 1
    warnings = [
        f"Turn {turn.number}: {warning}" if named else warning
        for turn, fields in sorted(checked, key=lambda item: item[0].number)
        for warning in fields["warnings"]
    ]
    if warnings and not confirm_warnings:
        raise JudgementNeedsConfirmation(warnings)
    minimum = task.project.min_justification_chars
    for turn, fields in checked:
        if len(fields["justification"]) < minimum:
            where = f" of turn {turn.number}" if named else ""
            raise ApplicationError(f"The justification{where} needs at least {minimum} characters.")
    if latest_turn is None or latest_turn.unready:
        raise ApplicationError("Both candidates must be ready before they are judged.")
    # The justification's MinHash is stored with it: the reviewers' flags compare it with
    # the contractor's earlier ones at submission.
    saved = [
        Judgement(
            turn=turn,
            round=task.round,
            minhash=quality_flags.minhash(fields["justification"]),
            **fields,
        )
        for turn, fields in checked
    ]
    for judgement in saved:
        # The turn was just read under the task's lock: no need to ask again that it exists.
        judgement.full_clean(exclude=["turn"], validate_constraints=False)
    # One upsert for all of them (a row per turn and round): created the first time, its
    # verdict replaced after that, as update_or_create would in three statements per turn.
    Judgement.objects.bulk_create(
        saved,
        update_conflicts=True,
        unique_fields=["turn", "round"],
        update_fields=[
            "preference",
            "scores",
            "justification",
            "warnings",
            "minhash",
            "updated_at",
        ],  # fmt: skip
    )
    for judgement in saved:
        judgement.turn.judged = True
    return saved


def _lock_for_contractor(task: Task, by: User, *, doing: str) -> Task:
    """The task read again under its row lock, which serialises every write of it.

    The row alone, without the acceptance tests (up to 1 MB) no caller of this needs. The
    project and repository are never locked (so the submits of one project do not queue
    behind each other): when the caller read them in this request they are kept, rather
    than joined into the locked read again at ~0.6 ms of Django CPU (bench.submit_load).
    """
    locked = Task.objects.select_for_update().defer("acceptance_tests").get(pk=task.pk)
    if locked.contractor_id != by.pk:
        raise ApplicationError(f"Only the task's contractor can {doing} it.")
    for name in ("project", "repository"):
        relation = Task._meta.get_field(name)
        if relation.is_cached(task) and getattr(locked, relation.attname) == getattr(
            task, relation.attname
        ):
            relation.set_cached_value(locked, relation.get_cached_value(task))
    return locked


def _refuse_unless_awaiting(task: Task, doing: str) -> None:
    if task.status != Task.Status.AWAITING_PREFERENCE:
        raise ApplicationError(
            f"This task cannot be {doing} while it is {task.get_status_display().lower()}."
        )


def _same_verdict(*, task: Task, judgement: Judgement, verdict: dict[str, Any]) -> bool:
    try:
        scores = validate_scores(project=task.project, scores=verdict.get("scores"))
    except ApplicationError:
        return False
    justification = normalise_newlines(verdict.get("justification") or "").strip()
    return (
        judgement.preference == verdict.get("preference")
        and judgement.scores == scores
        and judgement.justification == justification
    )


def _is_replay(*, task: Task, latest: dict[str, Any], earlier: dict[int, dict[str, Any]]) -> bool:
    """Whether a submit of the submitted `task` carries exactly the judgements it was
    submitted with, for the latest turn and for each earlier turn it names."""
    stored = {
        j.turn.number: j
        for j in Judgement.objects.filter(turn__task=task, round=task.round).select_related("turn")
    }
    # Submitting needs every turn judged this round, so the highest stored is the latest.
    asked = [(max(stored, default=0), latest), *earlier.items()]
    return all(
        number in stored and _same_verdict(task=task, judgement=stored[number], verdict=verdict)
        for number, verdict in asked
    )


@dataclass(frozen=True)
class SubmitOutcome:
    task: Task
    # True when this submit only repeated the one that sent the task to review (a double
    # click): nothing changed, so the caller must not announce a second submission.
    replayed: bool


def task_submit(
    *,
    task: Task,
    by: User,
    preference: int,
    scores: Any,
    justification: str,
    confirm_warnings: bool = False,
    earlier: dict[int, dict[str, Any]] | None = None,
) -> Task:
    """Record this round's judgement of the latest turn (and, revising, of the earlier turns
    in `earlier`: turn number -> preference, scores, justification) and send the task to review.

    See task_submit_once; this is it for callers that need not tell a replay apart.
    """
    return task_submit_once(
        task=task,
        by=by,
        preference=preference,
        scores=scores,
        justification=justification,
        confirm_warnings=confirm_warnings,
        earlier=earlier,
    ).task


@transaction.atomic
def task_submit_once(
    *,
    task: Task,
    by: User,
    preference: int,
    scores: Any,
    justification: str,
    confirm_warnings: bool = False,
    earlier: dict[int, dict[str, Any]] | None = None,
) -> SubmitOutcome:
    """Submit as task_submit does, and say whether this submit was only a replay.

    Every turn must be judged in this round and the project's minimum of turns reached.
    A repeated submit of a task already under review changes nothing when it carries the
    judgement that was submitted (a double click; `replayed` is then True); a different
    judgement raises ConflictError, so the loser of two racing submits is told rather than
    silently dropped.
    """
    task = _lock_for_contractor(task, by, doing="submit")
    latest = {"preference": preference, "scores": scores, "justification": justification}
    if task.status == Task.Status.SUBMITTED:
        # The row lock above makes a racing submit wait here until the first one commits,
        # so the judgements read below are the winner's.
        if _is_replay(task=task, latest=latest, earlier=earlier or {}):
            return SubmitOutcome(task=task, replayed=True)
        raise ConflictError(
            "This task was already submitted for review with a different judgement; "
            "this one was not saved."
        )
    _refuse_unless_awaiting(task, "submitted")
    by_number = _turns_for_judging(task)
    _judge_turns(
        task=task,
        turns=by_number,
        latest=latest,
        earlier=earlier,
        confirm_warnings=confirm_warnings,
    )
    turns = len(by_number)
    if task.needs_more_turns(turns=turns):
        raise ApplicationError(
            f"This project needs at least {task.project.min_turns} turns; write a follow-up "
            f"prompt first ({turns} so far)."
        )
    if not all(turn.judged for turn in by_number.values()):
        raise ApplicationError("Every turn needs a judgement before the task is submitted.")
    task.submit(by=by)
    submission = Submission.objects.create(
        task=task,
        round=task.round,
        active_seconds=task.active_seconds,
        turn_count=turns,
        submitted_by=by,
    )
    quality_flags.submission_flags_record(submission=submission)
    return SubmitOutcome(task=task, replayed=False)


@transaction.atomic
def task_follow_up(
    *,
    task: Task,
    by: User,
    preference: int,
    scores: Any,
    justification: str,
    prompt: str,
    confirm_warnings: bool = False,
    earlier: dict[int, dict[str, Any]] | None = None,
) -> Turn:
    """Judge the latest turn (and, revising, the earlier turns in `earlier`), then ask both
    models a follow-up: a new turn, two new candidates.

    The conversation continues from the turn's preferred candidate (tasks.prompting). Both
    jobs are enqueued on commit; on any error nothing is stored.
    """
    task = _lock_for_contractor(task, by, doing="continue")
    prompt = _check_prompt(prompt)
    _refuse_unless_awaiting(task, "continued")
    _check_pair_enabled(task)
    by_number = _turns_for_judging(task)
    latest = by_number[max(by_number)]
    if latest.number >= task.project.max_turns:
        raise ApplicationError(
            f"This project allows at most {task.project.max_turns} turns; submit the task."
        )
    _judge_turns(
        task=task,
        turns=by_number,
        latest={"preference": preference, "scores": scores, "justification": justification},
        earlier=earlier,
        confirm_warnings=confirm_warnings,
    )
    turn = Turn.objects.create(task=task, number=latest.number + 1, prompt=prompt)
    _turn_create_candidates(turn=turn, task=task)
    task.continue_conversation(by=by)
    return turn


@transaction.atomic
def task_revise(*, task: Task, by: User) -> Task:
    """Reopen a bounced task for its contractor, as a new review round.

    The new round starts from copies of the last round's judgements; the earlier rows stay
    as they were, so every round can be compared.
    """
    task = _lock_for_contractor(task, by, doing="revise")
    if task.status == Task.Status.AWAITING_PREFERENCE:
        return task
    previous_round = task.round
    task.revise(by=by)
    copies = [
        Judgement(
            turn_id=j.turn_id,
            round=task.round,
            preference=j.preference,
            scores=j.scores,
            justification=j.justification,
            warnings=j.warnings,
            minhash=j.minhash,
        )
        for j in Judgement.objects.filter(turn__task=task, round=previous_round)
    ]
    Judgement.objects.bulk_create(copies)
    return task


DRAFT_MAX_FIELDS = 256
DRAFT_MAX_VALUE_CHARS = 20_000
_DRAFT_FIELDS = ("preference", "justification", "follow_up")
# An earlier turn's field in a revision round: "turn1-preference", "turn2-score_A_security".
_EARLIER_FIELD_RE = re.compile(r"turn(\d{1,4})-(.+)")
ACTIVE_STATES = (
    Task.Status.GENERATING,
    Task.Status.GENERATION_FAILED,
    Task.Status.AWAITING_PREFERENCE,
)


@transaction.atomic
def judgement_draft_save(*, task: Task, by: User, data: dict[str, str]) -> JudgementDraft | None:
    """Keep what the contractor has typed: for the latest turn, and when revising also for the
    earlier turns (fields prefixed "turn<N>-"). Saving the same twice is harmless.

    Only the form's own fields are kept (bounded in number and size). Returns the latest
    turn's draft, or None when the task is not being judged (nothing to save), rather than
    failing a background save: a save sent as the page left after a submit is expected.
    """
    if task.contractor_id != by.pk:
        raise ApplicationError("Only the task's contractor can save its draft.")
    # Locked like task_submit locks it, so a save racing the submit either lands before the
    # submit or sees the task submitted: a submitted round's draft never changes.
    # The task's row is locked and read with its turns in one query (FOR UPDATE OF the task).
    # A task without turns is never being judged: nothing to lock or save.
    rows = list(
        Turn.objects.filter(task_id=task.pk)
        .select_related("task")
        .only("id", "number", "task__status", "task__round")
        .select_for_update(of=("task",))
        .order_by()
    )
    if not rows or rows[0].task.status != Task.Status.AWAITING_PREFERENCE:
        return None
    task = rows[0].task
    turns = {turn.number: turn for turn in rows}
    latest = max(turns)
    kept: dict[int, dict[str, str]] = {latest: {}}
    for key, value in list(data.items())[:DRAFT_MAX_FIELDS]:
        number, field = latest, key
        earlier = _EARLIER_FIELD_RE.fullmatch(key)
        if earlier:
            number, field = int(earlier[1]), earlier[2]
            if task.round <= 1 or number not in turns or number == latest:
                continue
        if field in _DRAFT_FIELDS or field.startswith("score_"):
            kept.setdefault(number, {})[field] = str(value)[:DRAFT_MAX_VALUE_CHARS]
    drafts = {
        number: JudgementDraft(turn=turns[number], round=task.round, data=fields)
        for number, fields in kept.items()
    }
    # One upsert for every turn's draft (a row per turn and round), as the autosave runs
    # every few seconds per contractor: update_or_create would cost three statements each.
    JudgementDraft.objects.bulk_create(
        drafts.values(),
        update_conflicts=True,
        unique_fields=["turn", "round"],
        update_fields=["data", "updated_at"],
    )
    return drafts[latest]


def credited_seconds(*, reported: Any, last_beat: Any, now: Any) -> int:
    """What a heartbeat may add: at most 60 s, and at most the wall time since the last one,
    so neither a stalled page nor a flood of beats claims more time than has passed."""
    seconds = max(0, min(int(reported), 60))
    if last_beat is not None:
        seconds = min(seconds, max(0, int((now - last_beat).total_seconds())))
    return seconds


def task_record_activity(*, task: Task, by: User, seconds: int) -> None:
    """Add active time (the page visible and in use) to the task and its latest turn.

    A beat is credited at most the wall time since the previous one (and at most 60 s),
    so neither a stalled page nor a flood of beats can claim more time than has passed.
    """
    if task.contractor_id != by.pk or task.status not in ACTIVE_STATES:
        return
    now = timezone.now()
    with transaction.atomic():
        locked = (
            Task.objects.select_for_update().only("status", "last_heartbeat_at").get(pk=task.pk)
        )
        # Checked again under the lock: a submit that committed since `task` was read froze
        # its time (review_decide counts active_seconds into the dashboard's aggregates).
        if locked.status not in ACTIVE_STATES:
            return
        seconds = credited_seconds(reported=seconds, last_beat=locked.last_heartbeat_at, now=now)
        Task.objects.filter(pk=task.pk).update(
            active_seconds=F("active_seconds") + seconds, last_heartbeat_at=now
        )
        if seconds:
            # The latest turn picked inside the UPDATE: one statement, not a read and a write.
            latest = Turn.objects.filter(task=task).order_by("-number").values("pk")[:1]
            Turn.objects.filter(pk__in=latest).update(active_seconds=F("active_seconds") + seconds)
