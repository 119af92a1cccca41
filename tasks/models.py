from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from marlin.exceptions import InvalidTransition
from marlin.models import BaseModel
from marlin.state_machine import move
from tasks import evidence
from tasks.contradictions import weight_error
from tasks.providers.base import is_model_key_variable

# Migration 0001 names tasks.models.default_rubric_axes as the field's default.
from tasks.rubric import default_rubric_axes  # noqa: F401


class ModelEndpoint(BaseModel):
    """A model that answers prompts. Its identity is shown only to admins and in exports."""

    class Provider(models.TextChoices):
        ANTHROPIC = "anthropic", "Anthropic Messages API"
        OPENAI = "openai", "OpenAI-compatible Chat Completions"
        COMMAND = "command", "Coding agent command line"
        DEMO = "demo", "Built-in demo (no network)"

    name = models.CharField(max_length=100, unique=True)
    provider = models.CharField(max_length=32, choices=Provider.choices, default=Provider.DEMO)
    model_id = models.CharField(max_length=200, blank=True)
    # For OpenAI-compatible servers (vLLM, Ollama, llama.cpp) or a proxy; empty: the default.
    base_url = models.CharField(max_length=300, blank=True)
    # temperature, max_tokens, timeout; for the command provider: command (a list), pass_env.
    parameters = models.JSONField(default=dict, blank=True)
    # The *name* of the environment variable that holds the key; keys never enter the database.
    api_key_env = models.CharField(max_length=100, blank=True)
    # How many candidates this endpoint may generate at once, across all workers.
    max_concurrency = models.PositiveIntegerField(default=4, validators=[MinValueValidator(1)])
    is_enabled = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.api_key_env and not re.fullmatch(r"[A-Z_][A-Z0-9_]{0,99}", self.api_key_env):
            errors["api_key_env"] = "The name of an environment variable, like ANTHROPIC_API_KEY."
        elif self.api_key_env and not is_model_key_variable(self.api_key_env):
            errors["api_key_env"] = _undeclared(self.api_key_env)
        if self.base_url and not re.fullmatch(r"https?://[^\s]+", self.base_url):
            errors["base_url"] = "An http:// or https:// URL."
        if not isinstance(self.parameters, dict):
            errors["parameters"] = "A JSON object."
        elif self.provider == self.Provider.COMMAND:
            command = self.parameters.get("command")
            if not (
                isinstance(command, list) and command and all(isinstance(a, str) for a in command)
            ):
                errors["parameters"] = (
                    'The command provider needs {"command": ["program", "arg", ...]}.'
                )
            pass_env = self.parameters.get("pass_env", [])
            if not (isinstance(pass_env, list) and all(isinstance(n, str) for n in pass_env)):
                errors["parameters"] = 'pass_env is a list of variable names: ["NAME", ...].'
            elif undeclared := [n for n in pass_env if not is_model_key_variable(n)]:
                errors["parameters"] = "pass_env: " + _undeclared(undeclared[0])
            elif not isinstance(self.parameters.get("network", False), bool):
                errors["parameters"] = "network is true (the agent may reach the network) or false."

        if self.provider in (self.Provider.ANTHROPIC, self.Provider.OPENAI) and not self.model_id:
            errors["model_id"] = "Name the model to call."
        if errors:
            raise ValidationError(errors)


def _undeclared(name: str) -> str:
    return (
        f"{name} is not a declared model variable: use a name starting with "
        f"{settings.MARLIN_MODEL_KEY_PREFIX}, or one listed in MARLIN_MODEL_KEY_NAMES "
        f"({', '.join(settings.MARLIN_MODEL_KEY_NAMES) or 'none'})."
    )


class Project(BaseModel):
    """What contractors work on: guidelines, rubric, pay and the pool of endpoints compared
    (each task is given a pair drawn from the pool, see tasks/pairing.py)."""

    class PairSampling(models.TextChoices):
        UNIFORM = "uniform", "Uniform: every pair equally often"
        WEIGHTED = "weighted", "Weighted: by the endpoints' weights"
        ADAPTIVE = "adaptive", "Adaptive: the pairs the leaderboard is least sure of"

    name = models.CharField(max_length=200, unique=True)
    guidelines = models.TextField(blank=True)
    rubric_axes = models.JSONField(default=default_rubric_axes)
    pay_per_task = models.DecimalField(
        max_digits=8, decimal_places=2, default=Decimal("0"), validators=[MinValueValidator(0)]
    )
    min_justification_chars = models.PositiveIntegerField(default=50)
    # Instructions for the models, sent before the task (the guidelines are for people).
    system_prompt = models.TextField(blank=True)
    min_turns = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    max_turns = models.PositiveIntegerField(default=3, validators=[MinValueValidator(1)])
    pair_sampling = models.CharField(
        max_length=16, choices=PairSampling.choices, default=PairSampling.ADAPTIVE
    )
    is_active = models.BooleanField(default=True)
    # Optional: pay no more than this per hour of active time on the task.
    hourly_rate_cap = models.DecimalField(
        max_digits=8,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Empty: every accepted task earns the full rate.",
    )
    # A reviewer's claim on a submission lapses after this, returning it to the queue.
    claim_minutes = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1), MaxValueValidator(24 * 60)]
    )
    # Empty: no cap. Otherwise a bounce of round max_rounds rejects the task for good.
    max_rounds = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    # Quality control (reviews/quality_*.py), each a share in percent.
    overlap_percent = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(100)],
        help_text="Accepted turns judged again by a second contractor, in percent.",
    )
    gold_percent = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(100)],
        help_text="Judging tasks served from the project's gold turns, in percent.",
    )
    audit_percent = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(100)],
        help_text="Accepted tasks audited by a second reviewer, in percent.",
    )
    pay_per_judging_task = models.DecimalField(
        max_digits=8, decimal_places=2, default=Decimal("0"), validators=[MinValueValidator(0)]
    )

    def __str__(self) -> str:
        return self.name

    @property
    def axis_keys(self) -> list[str]:
        return [axis["key"] for axis in self.rubric_axes]

    def clean(self) -> None:
        """A rubric every page can render and a sane number of turns."""
        errors: dict[str, str] = {}
        axes = self.rubric_axes
        if not isinstance(axes, list) or not axes:
            errors["rubric_axes"] = "Give at least one rubric axis."
        else:
            keys = []
            for number, axis in enumerate(axes, start=1):
                if not (
                    isinstance(axis, dict)
                    and isinstance(axis.get("key"), str)
                    and re.fullmatch(r"[a-z][a-z0-9_]{0,39}", axis["key"])
                    and isinstance(axis.get("label"), str)
                    and axis["label"].strip()
                    and isinstance(axis.get("points"), list)
                    and len(axis["points"]) == 5
                    and all(isinstance(p, str) and p.strip() for p in axis["points"])
                ):
                    errors["rubric_axes"] = (
                        f"Axis {number} needs a key (lower_snake_case), a label and exactly five "
                        "point descriptions (for 1 to 5)."
                    )
                    break
                keys.append(axis["key"])
            if "rubric_axes" not in errors and len(set(keys)) != len(keys):
                errors["rubric_axes"] = "Two axes share a key."
            if "rubric_axes" not in errors and (problem := weight_error(axes)):
                errors["rubric_axes"] = problem
        if self.min_turns and self.max_turns and self.min_turns > self.max_turns:
            errors["max_turns"] = "The maximum number of turns is below the minimum."
        if errors:
            raise ValidationError(errors)


class ProjectEndpoint(BaseModel):
    """One endpoint in a project's pool. Retiring it (is_enabled off) stops new tasks from
    drawing it; tasks that already compare it keep their pair, and the leaderboard keeps it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pool")
    endpoint = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="pools")
    # Relative: under weighted sampling a pair is drawn in proportion to the product of its
    # two weights.
    weight = models.DecimalField(
        max_digits=7,
        decimal_places=2,
        default=Decimal("1"),
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    is_enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "endpoint"], name="one_pool_row_per_endpoint"
            )
        ]

    def __str__(self) -> str:
        return f"{self.endpoint} in {self.project}"


class Task(BaseModel):
    """A contractor's PR-style request on one repository at one pinned commit."""

    class Status(models.TextChoices):
        DRAFT = "DRAFT", "Draft"
        GENERATING = "GENERATING", "Generating"
        GENERATION_FAILED = "GENERATION_FAILED", "Generation failed"
        AWAITING_PREFERENCE = "AWAITING_PREFERENCE", "Awaiting your judgement"
        SUBMITTED = "SUBMITTED", "Submitted for review"
        ACCEPTED = "ACCEPTED", "Accepted"
        BOUNCED = "BOUNCED", "Bounced"
        REJECTED = "REJECTED", "Rejected"

    class Kind(models.TextChoices):
        BUG_FIX = "bug_fix", "Bug fix"
        FEATURE = "feature", "Feature"
        REFACTOR = "refactor", "Refactor"
        SECURITY_FIX = "security_fix", "Security fix"
        TESTS = "tests", "Tests"
        PERFORMANCE = "performance", "Performance"
        DOCS = "docs", "Docs"
        OTHER = "other", "Other"

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="tasks")
    repository = models.ForeignKey(
        "repos.Repository", on_delete=models.PROTECT, related_name="tasks"
    )
    contractor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="tasks"
    )
    base_ref = models.CharField(max_length=255)
    commit_sha = models.CharField(max_length=40)
    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    status = models.CharField(
        max_length=32, choices=Status.choices, default=Status.DRAFT, db_index=True
    )
    # Review round: 1 on first submission, +1 each time a bounced task is revised.
    round = models.PositiveIntegerField(default=1)
    # Time the contractor's page was visible and in use (heartbeats), for pay and analytics.
    active_seconds = models.PositiveIntegerField(default=0)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    # Repository-relative paths the contractor named as the ones that matter (checked to
    # exist at the pinned commit by the service); the models are told, the export keeps them.
    focus_files = models.JSONField(default=list, blank=True)
    # The contractor's acceptance tests, [{path, content}]: never sent to the models, written
    # into each candidate's tree (and the base commit's) before the checks run.
    acceptance_tests = models.JSONField(default=list, blank=True)
    # The two endpoints this task compares, drawn from the project's pool when it is created
    # and kept for every turn. Stored in id order, so a pair has one spelling to group by;
    # which one answers in slot A is drawn per turn.
    first_endpoint = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="+")
    second_endpoint = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-created_at"]
        permissions = [("work_on_tasks", "Can create and judge tasks (contractor)")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(first_endpoint__lt=models.F("second_endpoint")),
                name="task_pair_in_id_order",
            )
        ]

    def __str__(self) -> str:
        return f"Task #{self.pk}: {self.title}"

    def _move(self, *, to: str, by, reason: str = "", **changes) -> None:
        old = move(self, to=to, transitions=TASK_TRANSITIONS, **changes)
        TaskEvent.objects.create(task=self, from_status=old, to_status=to, actor=by, reason=reason)

    def start_generation(self, *, by) -> None:
        """DRAFT or GENERATION_FAILED → GENERATING. Enqueueing is the calling service's job."""
        self._move(to=self.Status.GENERATING, by=by)

    def finish_generation(self) -> None:
        """GENERATING → AWAITING_PREFERENCE, once every candidate of the turn succeeded."""
        self._move(to=self.Status.AWAITING_PREFERENCE, by=None)

    def fail_generation(self, *, reason: str) -> None:
        """GENERATING → GENERATION_FAILED, once every candidate is done and one failed."""
        self._move(to=self.Status.GENERATION_FAILED, by=None, reason=reason)

    def continue_conversation(self, *, by) -> None:
        """AWAITING_PREFERENCE → GENERATING: a follow-up turn asks both models again."""
        self._move(to=self.Status.GENERATING, by=by, reason="follow-up turn")

    def regenerate(self, *, by, slot: str) -> None:
        """AWAITING_PREFERENCE → GENERATING: one candidate is asked again because both made
        the same change."""
        self._move(
            to=self.Status.GENERATING,
            by=by,
            reason=f"candidate {slot} regenerated: both candidates made the same change",
        )

    def submit(self, *, by) -> None:
        """AWAITING_PREFERENCE → SUBMITTED: the judgement of this round goes to review."""
        self._move(to=self.Status.SUBMITTED, by=by, submitted_at=timezone.now())

    def accept(self, *, by) -> None:
        """SUBMITTED → ACCEPTED: the task earns the project's rate."""
        self._move(to=self.Status.ACCEPTED, by=by, accepted_at=timezone.now())

    def bounce(self, *, by, reason: str) -> None:
        """SUBMITTED → BOUNCED: back to the contractor with the reviewer's feedback."""
        self._move(to=self.Status.BOUNCED, by=by, reason=reason)

    def reject(self, *, by, reason: str) -> None:
        """SUBMITTED → REJECTED: bounced past the project's round cap; final."""
        self._move(to=self.Status.REJECTED, by=by, reason=reason)

    def revise(self, *, by) -> None:
        """BOUNCED → AWAITING_PREFERENCE and a new review round; earlier rounds stay as they were."""
        self._move(to=self.Status.AWAITING_PREFERENCE, by=by, round=self.round + 1)

    # Rules the services enforce and the pages announce, computed here once.

    @property
    def is_last_round(self) -> bool:
        """The project caps review rounds and this is the last: a bounce rejects the task."""
        cap = self.project.max_rounds
        return cap is not None and self.round >= cap

    def needs_more_turns(self, *, turns: int) -> bool:
        """With `turns` turns the task is below the project's minimum and cannot be submitted."""
        return turns < self.project.min_turns


_S = Task.Status
TASK_TRANSITIONS: dict[str, set[str]] = {
    _S.DRAFT: {_S.GENERATING},
    _S.GENERATING: {_S.AWAITING_PREFERENCE, _S.GENERATION_FAILED},
    _S.GENERATION_FAILED: {_S.GENERATING},
    _S.AWAITING_PREFERENCE: {_S.SUBMITTED, _S.GENERATING},
    _S.SUBMITTED: {_S.ACCEPTED, _S.BOUNCED, _S.REJECTED},
    _S.BOUNCED: {_S.AWAITING_PREFERENCE},
    _S.ACCEPTED: set(),
    _S.REJECTED: set(),
}
# States in which a task has reached review: reviewers may open it.
REVIEWED_STATES = (_S.SUBMITTED, _S.ACCEPTED, _S.BOUNCED, _S.REJECTED)
# States that no longer count against a repository's open-task quota.
CLOSED_STATES = (_S.ACCEPTED, _S.REJECTED)


class TaskEvent(models.Model):
    """One row per state change of a task (and per review claim); never edited or deleted.

    Claims do not change the task's status: their rows have from_status == to_status and
    a `kind` saying what happened, so the timeline tells the whole story.
    """

    class Kind(models.TextChoices):
        STATUS = "status", "Status change"
        CLAIM = "claim", "Claimed for review"
        RELEASE = "release", "Claim released"
        EXPIRE = "expire", "Claim expired"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="events")
    # Blank on the creation event, which has no state before it.
    from_status = models.CharField(max_length=32, choices=Task.Status.choices, blank=True)
    to_status = models.CharField(max_length=32, choices=Task.Status.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.STATUS)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.task_id}: {self.from_status} → {self.to_status}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("Task events are append-only; they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Task events are append-only; they cannot be deleted.")


class Submission(models.Model):
    """One row per submission round, written when the contractor submits; never changed.

    The judgements of the round are the Judgement rows with the same round number.
    """

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="submissions")
    round = models.PositiveIntegerField()
    # Time on task and turns at the moment of submitting, as the reviewer of this round saw it.
    active_seconds = models.PositiveIntegerField()
    turn_count = models.PositiveIntegerField()
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["task", "round"]
        constraints = [
            models.UniqueConstraint(fields=["task", "round"], name="submission_unique_round")
        ]

    def __str__(self) -> str:
        return f"Round {self.round} of task {self.task_id}"


class Turn(BaseModel):
    """One prompt of the conversation and the two candidates answering it."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="turns")
    number = models.PositiveIntegerField()
    prompt = models.TextField()
    active_seconds = models.PositiveIntegerField(default=0)
    # Set once both candidates are ready: True when they made the same change (whitespace
    # aside). Such a turn can only be judged "about the same" and is never a pairwise record.
    has_identical_candidates = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["task", "number"]
        constraints = [
            models.UniqueConstraint(fields=["task", "number"], name="turn_unique_number")
        ]

    def __str__(self) -> str:
        return f"Turn {self.number} of task {self.task_id}"


class SentPrompt(models.Model):
    """The messages a model was sent: the system message, then the conversation as it saw it.

    Written before the model is called and kept once per distinct content (both candidates
    of a turn share a row), so an export gives trainers exactly what each model saw, even
    after a revision changes which answer the conversation would continue from today.
    """

    digest = models.CharField(max_length=64, unique=True)
    messages = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Prompt {self.digest[:12]}"


class Candidate(BaseModel):
    """One model's answer to a turn, shown to people only as slot A or B."""

    class Slot(models.TextChoices):
        A = "A", "A"
        B = "B", "B"

    class Status(models.TextChoices):
        QUEUED = "QUEUED", "Queued"
        RUNNING = "RUNNING", "Generating"
        SUCCEEDED = "SUCCEEDED", "Ready"
        FAILED = "FAILED", "Failed"

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="candidates")
    slot = models.CharField(max_length=1, choices=Slot.choices)
    endpoint = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="candidates")
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    # The model's whole answer as received (kept for the export), and what was read from it.
    raw_answer = models.TextField(blank=True)
    explanation = models.TextField(blank=True)
    diff = models.TextField(blank=True)
    is_truncated = models.BooleanField(default=False)
    # None until checked; False with apply_error saying why git refused the diff.
    applies_cleanly = models.BooleanField(null=True, blank=True)
    apply_error = models.TextField(blank=True)
    error = models.TextField(blank=True)
    # The technical cause of the last failure (HTTP status, exit code, stderr tail), for
    # admins only: `error` is what contractors read. Bounded and scrubbed of secrets.
    failure_detail = models.TextField(blank=True)
    # Token usage of the successful call, as the model server reported it.
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    # What the model was sent for the answer kept (None for answers from before it was kept).
    sent_prompt = models.ForeignKey(
        SentPrompt, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    attempts = models.PositiveIntegerField(default=0)
    # The broker's id of the job that claimed the row: a redelivery of that same job
    # (its worker died) may take the row over; any other job may not.
    job_id = models.CharField(max_length=64, blank=True)
    # While RUNNING: renewed by the job's heartbeat. Once past, the job's worker is presumed
    # dead and the reaper sends the candidate again (None: claimed before leases existed).
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["turn", "slot"]
        constraints = [
            models.UniqueConstraint(fields=["turn", "slot"], name="candidate_unique_slot"),
        ]

    def __str__(self) -> str:
        return f"Candidate {self.slot} of turn {self.turn_id}"

    @property
    def is_terminal(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def elapsed_seconds(self) -> float | None:
        """Generation time so far (or in all, once finished), for the live progress display."""
        if self.started_at is None:
            return None
        return ((self.finished_at or timezone.now()) - self.started_at).total_seconds()

    def claim(self, *, job_id: str) -> None:
        """QUEUED → RUNNING for exactly one job.

        The same job redelivered after its worker died takes over its own RUNNING row (the
        answer was never written); a duplicate of any other job raises InvalidTransition.
        Either way the row gets a fresh lease, which the job's heartbeat then renews.
        """
        now = timezone.now()
        lease = now + timedelta(seconds=settings.MARLIN_GENERATION_HEARTBEAT_STALE_SECONDS)
        if self.status == self.Status.RUNNING and job_id and self.job_id == job_id:
            # Guarded by status and job id: if the reaper re-queued the row (its lease lapsed)
            # or another job took it since this copy was read, nothing matches and this
            # delivery falls through to move(), which refuses it.
            matched = Candidate.objects.filter(
                pk=self.pk, status=self.Status.RUNNING, job_id=job_id
            ).update(
                started_at=now, attempts=F("attempts") + 1, lease_expires_at=lease, updated_at=now
            )
            if matched == 1:
                self.refresh_from_db()
                return
        move(
            self,
            to=self.Status.RUNNING,
            transitions=CANDIDATE_TRANSITIONS,
            started_at=now,
            attempts=self.attempts + 1,
            job_id=job_id,
            lease_expires_at=lease,
        )

    def renew_lease(self, *, job_id: str, seconds: float) -> bool:
        """Extend the lease of the job holding the row; False once another job (or none) holds it."""
        now = timezone.now()
        # Matches only while this job holds the row: a heartbeat must not extend a lease the
        # reaper has taken back (and handed to another job) in the meantime.
        return (
            Candidate.objects.filter(pk=self.pk, status=self.Status.RUNNING, job_id=job_id).update(
                lease_expires_at=now + timedelta(seconds=seconds)
            )
            == 1
        )

    def succeed(
        self,
        *,
        raw_answer: str,
        explanation: str,
        diff: str,
        is_truncated: bool,
        applies_cleanly: bool,
        apply_error: str,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        sent_prompt: SentPrompt | None = None,
        job_id: str | None = None,
    ) -> None:
        """RUNNING → SUCCEEDED with the answer and what the model was sent; written once, a
        second write raises.

        With `job_id`, only while that job holds the row: a job presumed dead and replaced
        (a zombie, or its message redelivered) raises instead of overwriting its successor.
        """
        self._finish(
            to=self.Status.SUCCEEDED,
            holder=job_id,
            raw_answer=raw_answer,
            explanation=explanation,
            diff=diff,
            is_truncated=is_truncated,
            applies_cleanly=applies_cleanly,
            apply_error=apply_error,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            sent_prompt=sent_prompt,
            error="",
            failure_detail="",
            finished_at=timezone.now(),
        )

    def fail(self, *, reason: str, detail: str = "", job_id: str | None = None) -> None:
        """RUNNING or QUEUED → FAILED with a reason a person can read and, for admins, the
        technical `detail` (already scrubbed: see tasks.failure_detail). With `job_id`, only
        while that job holds the row, as for succeed."""
        self._finish(
            to=self.Status.FAILED,
            holder=job_id,
            error=reason,
            failure_detail=detail,
            finished_at=timezone.now(),
        )

    def _finish(self, *, to: str, holder: str | None, **changes) -> None:
        """Move the row to `to` and drop its lease; with `holder`, only if that job holds it."""
        with transaction.atomic():
            if holder is not None:
                # The lock keeps another process from handing the row to another job
                # between this check and the write (compare-and-set on the job id).
                held_by = (
                    Candidate.objects.select_for_update()
                    .values_list("job_id", flat=True)
                    .get(pk=self.pk)
                )
                if held_by != holder:
                    self.refresh_from_db(fields=["status", "job_id"])
                    raise InvalidTransition(obj=self, current=self.status, to=to)
            move(
                self,
                to=to,
                transitions=CANDIDATE_TRANSITIONS,
                lease_expires_at=None,
                **changes,
            )

    def release(self, *, job_id: str, note: str) -> None:
        """RUNNING → QUEUED: the job `job_id` is presumed dead (its lease ran out).

        The attempt it spent still counts; the next job to claim the row gets a new job id,
        so the dead job's message, if the broker delivers it again, can no longer write.
        """
        if self.status != self.Status.RUNNING:
            raise InvalidTransition(obj=self, current=self.status, to=self.Status.QUEUED)
        self._finish(to=self.Status.QUEUED, holder=job_id, job_id="", started_at=None, error=note)

    def requeue(self) -> None:
        """FAILED → QUEUED, for a retry of this candidate only, with a fresh set of attempts."""
        if self.status != self.Status.FAILED:
            raise InvalidTransition(obj=self, current=self.status, to=self.Status.QUEUED)
        self._back_to_queue()

    def regenerate(self) -> None:
        """SUCCEEDED → QUEUED: the answer (the same change as the other slot's) is dropped
        and the model asked again. The service allows it only for identical candidates."""
        if self.status != self.Status.SUCCEEDED:
            raise InvalidTransition(obj=self, current=self.status, to=self.Status.QUEUED)
        self._back_to_queue(
            raw_answer="", explanation="", diff="", is_truncated=False, applies_cleanly=None,
            apply_error="", input_tokens=None, output_tokens=None, sent_prompt=None,
        )  # fmt: skip

    def _back_to_queue(self, **cleared) -> None:
        move(
            self,
            to=self.Status.QUEUED,
            transitions=CANDIDATE_TRANSITIONS,
            error="",
            failure_detail="",
            started_at=None,
            finished_at=None,
            attempts=0,
            job_id="",
            lease_expires_at=None,
            **cleared,
        )


_G = Candidate.Status
CANDIDATE_TRANSITIONS: dict[str, set[str]] = {
    _G.QUEUED: {_G.RUNNING, _G.FAILED},
    # Back to QUEUED only when the job holding it is presumed dead (its lease ran out).
    _G.RUNNING: {_G.SUCCEEDED, _G.FAILED, _G.QUEUED},
    # Only to regenerate one of two identical answers (the service checks that they are).
    _G.SUCCEEDED: {_G.QUEUED},
    _G.FAILED: {_G.QUEUED},
}


class Preference(models.IntegerChoices):
    A_MUCH_BETTER = -3, "A much better"
    A_BETTER = -2, "A better"
    A_SLIGHTLY_BETTER = -1, "A slightly better"
    ABOUT_THE_SAME = 0, "About the same"
    B_SLIGHTLY_BETTER = 1, "B slightly better"
    B_BETTER = 2, "B better"
    B_MUCH_BETTER = 3, "B much better"


class Judgement(BaseModel):
    """The contractor's verdict on one turn in one review round; each round keeps its own row."""

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="judgements")
    round = models.PositiveIntegerField()
    preference = models.SmallIntegerField(choices=Preference.choices)
    # {"A": {axis_key: 1..5, ...}, "B": {...}}, validated against the project's axes.
    scores = models.JSONField()
    justification = models.TextField()
    # Consistency warnings the contractor saw and confirmed before submitting.
    warnings = models.JSONField(default=list, blank=True)
    # MinHash of the justification's word shingles (reviews/minhash.py), packed: near-duplicates
    # of a contractor's earlier justifications are found without rereading them.
    minhash = models.BinaryField(default=b"", blank=True)

    class Meta:
        ordering = ["turn", "round"]
        constraints = [
            models.UniqueConstraint(fields=["turn", "round"], name="judgement_unique_round"),
            models.CheckConstraint(
                condition=models.Q(preference__gte=-3, preference__lte=3),
                name="judgement_preference_on_scale",
            ),
        ]

    def __str__(self) -> str:
        return f"Judgement of turn {self.turn_id}, round {self.round}"

    @property
    def preferred_slot(self) -> str | None:
        if self.preference < 0:
            return Candidate.Slot.A
        if self.preference > 0:
            return Candidate.Slot.B
        return None


class JudgementDraft(BaseModel):
    """What the contractor has typed so far for a turn and round, saved as they work.

    Free-form (it may be incomplete or invalid); the real Judgement is written on submit.
    """

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="drafts")
    round = models.PositiveIntegerField()
    data = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["turn", "round"], name="judgement_draft_unique_round")
        ]

    def __str__(self) -> str:
        return f"Draft of turn {self.turn_id}, round {self.round}"


def default_acceptance_command() -> list[str]:
    return list(evidence.DEFAULT_ACCEPTANCE_COMMAND)


class CheckRecipe(BaseModel):
    """How to check a change to a repository: a setup (cached per commit, network allowed)
    and checks (no network), all run in the sandbox. A project's own recipe for the
    repository wins over the repository's general one."""

    repository = models.ForeignKey(
        "repos.Repository", on_delete=models.CASCADE, related_name="check_recipes"
    )
    project = models.ForeignKey(
        Project,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="check_recipes",
        help_text="Empty: for every project working on this repository.",
    )
    # [["program", "arg", ...], ...]: prepare {env} (a venv, installed dependencies).
    setup_commands = models.JSONField(default=list, blank=True)
    setup_timeout_seconds = models.PositiveIntegerField(default=600)
    # [{"name": ..., "command": [...], "kind": "tests"|"findings"|"status", "timeout_seconds"}]
    checks = models.JSONField(default=list)
    # Runs the contractor's acceptance tests: {files} is where their paths go.
    acceptance_command = models.JSONField(default=default_acceptance_command)
    is_enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["repository", "project"]
        constraints = [
            models.UniqueConstraint(
                fields=["repository"],
                condition=models.Q(project__isnull=True),
                name="check_recipe_one_general_per_repository",
            ),
            models.UniqueConstraint(
                fields=["repository", "project"], name="check_recipe_one_per_project"
            ),
        ]

    def __str__(self) -> str:
        scope = f" for {self.project}" if self.project_id else ""
        return f"Checks of {self.repository}{scope}"

    def clean(self) -> None:
        errors = evidence.recipe_errors(
            setup_commands=self.setup_commands,
            checks=self.checks,
            acceptance_command=self.acceptance_command,
            setup_timeout_seconds=self.setup_timeout_seconds,
        )
        if errors:
            raise ValidationError(errors)

    def snapshot(self) -> dict:
        """What a run executes, with every default filled in: stored with the run and hashed."""
        return {
            "setup_commands": self.setup_commands,
            "setup_timeout_seconds": self.setup_timeout_seconds,
            "checks": [
                {
                    "name": check["name"],
                    "command": check["command"],
                    "kind": check.get("kind", "status"),
                    "timeout_seconds": check.get("timeout_seconds", 300),
                }
                for check in self.checks
            ],
            "acceptance_command": self.acceptance_command,
        }


class EvidenceRun(BaseModel):
    """One sandboxed run of a recipe on a tree: a candidate's change, or (no candidate) the
    task's pinned commit, which every candidate of the task is compared with."""

    class Status(models.TextChoices):
        QUEUED = "QUEUED", "Queued"
        RUNNING = "RUNNING", "Running checks"
        SUCCEEDED = "SUCCEEDED", "Done"
        FAILED = "FAILED", "Failed"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="evidence_runs")
    candidate = models.OneToOneField(
        Candidate, on_delete=models.CASCADE, null=True, blank=True, related_name="evidence"
    )
    # A candidate's run names the base run it is compared with.
    base_run = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # What decides whether a stored result still holds: commit, recipe, tests, change.
    key = models.CharField(max_length=64)
    recipe = models.JSONField()
    recipe_digest = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    # {"applied", "setup": {...}, "checks": [...], "acceptance": {...} | None}
    results = models.JSONField(null=True, blank=True)
    # A candidate's run once it and its base run are done: what the evidence says against
    # the base (tasks.evidence.summary, no logs) and whether the candidate is clean (passes
    # the acceptance tests, breaks nothing). Stored so exports and the dashboard read it
    # instead of every test's outcome.
    verdict = models.JSONField(null=True, blank=True)
    is_clean = models.BooleanField(null=True, blank=True)
    # Why the run could not be done, for people; the technical cause for admins.
    error = models.TextField(blank=True)
    failure_detail = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    job_id = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["task", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["task", "key"],
                condition=models.Q(candidate__isnull=True),
                name="evidence_one_base_run_per_key",
            ),
        ]

    def __str__(self) -> str:
        what = f"candidate {self.candidate_id}" if self.candidate_id else "the base commit"
        return f"Evidence for {what} of task {self.task_id}"

    @property
    def is_base(self) -> bool:
        return self.candidate_id is None

    @property
    def is_terminal(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    def claim(self, *, job_id: str) -> None:
        """QUEUED → RUNNING for one job; the same job redelivered takes its own row back."""
        now = timezone.now()
        if self.status == self.Status.RUNNING and job_id and self.job_id == job_id:
            # Guarded by status and job id, as Candidate.claim: a run that finished, or was
            # re-queued, after this copy was read is not taken over; move() refuses it.
            matched = EvidenceRun.objects.filter(
                pk=self.pk, status=self.Status.RUNNING, job_id=job_id
            ).update(started_at=now, attempts=F("attempts") + 1, updated_at=now)
            if matched == 1:
                self.refresh_from_db()
                return
        move(self, to=self.Status.RUNNING, transitions=EVIDENCE_TRANSITIONS,
             started_at=now, attempts=self.attempts + 1, job_id=job_id)  # fmt: skip

    def succeed(self, *, results: dict, job_id: str) -> None:
        """RUNNING → SUCCEEDED with the results, only while `job_id` holds the row."""
        self._finish(to=self.Status.SUCCEEDED, job_id=job_id, results=results, error="",
                     failure_detail="")  # fmt: skip

    def fail(self, *, reason: str, detail: str = "", job_id: str | None = None,
             results: dict | None = None) -> None:  # fmt: skip
        """RUNNING (or QUEUED) → FAILED, saying why; with `job_id` only while it holds the row."""
        self._finish(to=self.Status.FAILED, job_id=job_id, error=reason, failure_detail=detail,
                     results=results)  # fmt: skip

    def _finish(self, *, to: str, job_id: str | None, **changes) -> None:
        with transaction.atomic():
            held_by = (
                EvidenceRun.objects.select_for_update().values_list("job_id", flat=True)
            ).get(pk=self.pk)
            if job_id is not None and held_by != job_id:
                self.refresh_from_db(fields=["status", "job_id"])
                raise InvalidTransition(obj=self, current=self.status, to=to)
            move(self, to=to, transitions=EVIDENCE_TRANSITIONS, finished_at=timezone.now(),
                 **changes)  # fmt: skip

    def send_again(self) -> None:
        """QUEUED or a presumed-dead RUNNING → QUEUED for a new job; attempts still count."""
        move(self, to=self.Status.QUEUED, transitions=EVIDENCE_TRANSITIONS, job_id="",
             started_at=None)  # fmt: skip

    def restart(self, *, key: str, recipe: dict, recipe_digest: str, base_run=None) -> None:
        """Any finished state or a presumed-dead RUNNING → QUEUED with nothing kept: the
        change, the tests or the recipe it was run for is no longer the one to check."""
        move(self, to=self.Status.QUEUED, transitions=EVIDENCE_TRANSITIONS, key=key,
             recipe=recipe, recipe_digest=recipe_digest, base_run=base_run, results=None,
             verdict=None, is_clean=None, error="", failure_detail="", attempts=0, job_id="", started_at=None,
             finished_at=None)  # fmt: skip


_E = EvidenceRun.Status
EVIDENCE_TRANSITIONS: dict[str, set[str]] = {
    _E.QUEUED: {_E.RUNNING, _E.FAILED, _E.QUEUED},
    _E.RUNNING: {_E.SUCCEEDED, _E.FAILED, _E.QUEUED},
    _E.SUCCEEDED: {_E.QUEUED},
    _E.FAILED: {_E.QUEUED},
}


class WonLostTied(models.Model):
    """Counts of comparisons between slot A and slot B: A won, B won, neither."""

    a_won = models.PositiveIntegerField(default=0)
    b_won = models.PositiveIntegerField(default=0)
    tied = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


class PairOutcomeCount(WonLostTied):
    """How the counted judgements of a project's turns came out, per (endpoint in slot A,
    endpoint in slot B) and board: axis "" is the overall preference (a negative preference
    means A won), any other axis the candidates' scores on it (the higher score wins).

    The counted judgements are the final judgement of every turn of an accepted task (the
    set the dashboard and a default export read). reviews.aggregates keeps the rows up to
    date when a task is accepted, with UPDATE ... SET n = n + k, and can rebuild them from
    scratch. The table lives here, not in reviews, because adaptive pairing
    (tasks/pool.py) reads it and dependencies point reviews -> tasks.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    endpoint_a = models.ForeignKey(ModelEndpoint, on_delete=models.CASCADE, related_name="+")
    endpoint_b = models.ForeignKey(ModelEndpoint, on_delete=models.CASCADE, related_name="+")
    axis = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "endpoint_a", "endpoint_b", "axis"],
                name="pair_outcome_count_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.endpoint_a_id} vs {self.endpoint_b_id} on {self.axis or 'preference'}"
