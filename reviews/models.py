from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from marlin.models import BaseModel
from marlin.state_machine import move
from tasks.models import WonLostTied


class Review(BaseModel):
    """A reviewer's decision on one round of a task; rounds are never overwritten."""

    class Decision(models.TextChoices):
        ACCEPT = "ACCEPT", "Accept"
        BOUNCE = "BOUNCE", "Bounce"

    task = models.ForeignKey("tasks.Task", on_delete=models.CASCADE, related_name="reviews")
    round = models.PositiveIntegerField()
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews"
    )
    decision = models.CharField(max_length=8, choices=Decision.choices)
    # The general feedback; notes attached to a turn or a field are ReviewNote rows.
    feedback = models.TextField(blank=True)
    # A bounce of the project's last allowed round rejects the task for good.
    rejects_task = models.BooleanField(default=False)
    # When the reviewer's claim started: time to decision is created_at - claimed_at.
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["task", "round"]
        constraints = [
            models.UniqueConstraint(fields=["task", "round"], name="review_unique_round"),
        ]
        permissions = [
            ("review_tasks", "Can review submitted tasks (reviewer)"),
            ("export_dataset", "Can export preference datasets (admin)"),
            ("oversee_reviews", "Can see every task's record, pay and reviewer metrics (admin)"),
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} of task {self.task_id} round {self.round}"


class ReviewNote(models.Model):
    """Feedback attached to one turn, or to one field of a turn's judgement."""

    # `field` is empty (the turn as a whole), "preference", "justification", or a rubric
    # axis key; an axis names a candidate's score, so it comes with the slot.
    PREFERENCE = "preference"
    JUSTIFICATION = "justification"

    review = models.ForeignKey(Review, on_delete=models.CASCADE, related_name="notes")
    turn = models.ForeignKey("tasks.Turn", on_delete=models.CASCADE, related_name="review_notes")
    slot = models.CharField(max_length=1, blank=True)
    field = models.CharField(max_length=40, blank=True)
    text = models.TextField()

    class Meta:
        ordering = ["review", "turn", "slot", "field", "pk"]

    def __str__(self) -> str:
        return f"Note on turn {self.turn_id} {self.slot}{self.field}"

    @property
    def anchor(self) -> str:
        """Where the note applies, as a key the pages look it up by."""
        return note_anchor(turn_id=self.turn_id, slot=self.slot, field=self.field)


def note_anchor(*, turn_id: int, slot: str = "", field: str = "") -> str:
    return f"{turn_id}:{slot}:{field}"


class ReviewClaim(models.Model):
    """A reviewer's hold on a submitted task while they review it; one open claim per task.

    Rows are kept once released (decided, released by hand, or expired) as the claim history.
    """

    class Ending(models.TextChoices):
        OPEN = "", "Open"
        DECIDED = "decided", "Decided"
        RELEASED = "released", "Released"
        EXPIRED = "expired", "Expired"

    task = models.ForeignKey("tasks.Task", on_delete=models.CASCADE, related_name="claims")
    round = models.PositiveIntegerField()
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="review_claims"
    )
    claimed_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ending = models.CharField(max_length=16, choices=Ending.choices, blank=True)

    class Meta:
        ordering = ["task", "claimed_at"]
        constraints = [
            # The database, not a check in Python, makes two claims at once impossible.
            models.UniqueConstraint(
                fields=["task"], condition=Q(ended_at__isnull=True), name="claim_one_open_per_task"
            ),
        ]

    def __str__(self) -> str:
        return f"Claim of task {self.task_id} by {self.reviewer_id}"

    @property
    def is_open(self) -> bool:
        return self.ended_at is None and self.expires_at > timezone.now()

    def end(self, *, ending: str) -> None:
        """OPEN → DECIDED, RELEASED or EXPIRED, once: a claim another process ended first
        (the reaper expiring it as its reviewer decides) raises InvalidTransition."""
        move(self, to=ending, transitions=CLAIM_TRANSITIONS, field="ending",
             ended_at=timezone.now())  # fmt: skip


# A claim's life: open, then ended one way for good. `ended_at` is set with the ending, and
# the partial unique index on it allows one open claim per task.
_C = ReviewClaim.Ending
CLAIM_TRANSITIONS: dict[str, set[str]] = {
    _C.OPEN: {_C.DECIDED, _C.RELEASED, _C.EXPIRED},
    _C.DECIDED: set(),
    _C.RELEASED: set(),
    _C.EXPIRED: set(),
}


class Earning(models.Model):
    """What an accepted task earned its contractor, fixed at acceptance."""

    task = models.OneToOneField("tasks.Task", on_delete=models.PROTECT, related_name="earning")
    contractor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="earnings"
    )
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    # The project's rate and the time on task it was computed from.
    rate = models.DecimalField(max_digits=8, decimal_places=2)
    active_seconds = models.PositiveIntegerField()
    capped = models.BooleanField(default=False)
    earned_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-earned_at"]

    def __str__(self) -> str:
        return f"{self.amount} for task {self.task_id}"


class Notification(models.Model):
    """An in-app message to one person, e.g. that their task was bounced or accepted."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    task = models.ForeignKey(
        "tasks.Task", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    message = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["user", "read_at"], name="notification_unread")]

    def __str__(self) -> str:
        return self.message


def _export_storage():
    from django.core.files.storage import storages

    return storages["exports"]


class ExportJob(BaseModel):
    """A dataset export run in the background; the file lands in the exports storage."""

    class Status(models.TextChoices):
        QUEUED = "QUEUED", "Queued"
        RUNNING = "RUNNING", "Running"
        SUCCEEDED = "SUCCEEDED", "Ready"
        FAILED = "FAILED", "Failed"

    class PromptStyle(models.TextChoices):
        """The prompt of a pairwise record (trl, openai, criterion:<axis>)."""

        MODEL = (
            "model",
            "What the model was sent (system message, repository context, conversation)",
        )
        BARE = "bare", "The contractor's prompts only"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="export_jobs"
    )
    format = models.CharField(max_length=60)
    # reviews.export_filters.ExportFilters.to_json()
    filters = models.JSONField(default=dict)
    prompt_style = models.CharField(
        max_length=16, choices=PromptStyle.choices, default=PromptStyle.MODEL
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(null=True, blank=True)
    done = models.PositiveIntegerField(default=0)
    records = models.PositiveIntegerField(default=0)
    # Judged turns not in the file, by reason in words ({"ties": 3}): ExportSummary.left_out.
    left_out = models.JSONField(default=dict)
    file = models.FileField(storage=_export_storage, max_length=300, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Export {self.pk} ({self.format})"

    def start(self) -> None:
        """QUEUED → RUNNING; RUNNING → RUNNING is a redelivered job starting over."""
        move(self, to=self.Status.RUNNING, transitions=EXPORT_TRANSITIONS,
             started_at=timezone.now(), done=0)  # fmt: skip

    def succeed(self, **written) -> None:
        """RUNNING → SUCCEEDED with what was written (file, counts, digest)."""
        move(self, to=self.Status.SUCCEEDED, transitions=EXPORT_TRANSITIONS,
             finished_at=timezone.now(), **written)  # fmt: skip

    def fail(self, *, error: str) -> None:
        """RUNNING → FAILED, saying why."""
        move(self, to=self.Status.FAILED, transitions=EXPORT_TRANSITIONS,
             finished_at=timezone.now(), error=error)  # fmt: skip

    @property
    def percent(self) -> int:
        if not self.total:
            return 100 if self.status == self.Status.SUCCEEDED else 0
        return min(100, round(100 * self.done / self.total))

    @property
    def extension(self) -> str:
        return "csv" if self.format == "csv" else "jsonl"

    @property
    def filename(self) -> str:
        return f"marlin-{self.format.replace(':', '-')}-{self.pk}.{self.extension}"


_X = ExportJob.Status
EXPORT_TRANSITIONS: dict[str, set[str]] = {
    _X.QUEUED: {_X.RUNNING},
    _X.RUNNING: {_X.RUNNING, _X.SUCCEEDED, _X.FAILED},
    _X.SUCCEEDED: set(),
    _X.FAILED: set(),
}


class LineComment(BaseModel):
    """A note on one line (or a range of lines) of one side of a candidate's diff.

    A contractor's comments belong to their judgement and are exported with it. A reviewer's
    comment is a pending draft, seen by that reviewer only, until their decision attaches it
    to the Review; from then on it is bounce feedback the contractor sees in place.
    """

    class Role(models.TextChoices):
        CONTRACTOR = "contractor", "Contractor"
        REVIEWER = "reviewer", "Reviewer"

    class Side(models.TextChoices):
        OLD = "old", "Before the change"
        NEW = "new", "After the change"

    candidate = models.ForeignKey(
        "tasks.Candidate", on_delete=models.CASCADE, related_name="line_comments"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="line_comments"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    # The task's review round when written: a reviewer's draft belongs to the round they hold.
    round = models.PositiveIntegerField()
    # The file's path after the change (before it, for a removed file).
    path = models.CharField(max_length=1000)
    side = models.CharField(max_length=3, choices=Side.choices)
    line = models.PositiveIntegerField()
    end_line = models.PositiveIntegerField(null=True, blank=True)
    text = models.TextField(max_length=5000)
    review = models.ForeignKey(
        Review, on_delete=models.CASCADE, null=True, blank=True, related_name="line_comments"
    )

    class Meta:
        ordering = ["candidate", "path", "side", "line", "pk"]
        indexes = [models.Index(fields=["candidate", "role"], name="line_comment_candidate_role")]
        constraints = [
            models.CheckConstraint(
                condition=Q(line__gte=1)
                & (Q(end_line__isnull=True) | Q(end_line__gte=models.F("line"))),
                name="line_comment_range_ordered",
            ),
            models.CheckConstraint(
                condition=Q(role="reviewer") | Q(review__isnull=True),
                name="line_comment_only_reviewers_in_reviews",
            ),
        ]

    def __str__(self) -> str:
        return f"Comment on {self.path}:{self.line} ({self.side}) of candidate {self.candidate_id}"


# --- Quality control (see reviews/quality_*.py) ---------------------------------------------


class GoldTurn(BaseModel):
    """An accepted turn with a known answer, mixed into judging tasks to measure contractors.

    `expected` and `score_ranges` are in the turn's own slots; a judging task that shows the
    candidates swapped is mapped back before it is graded.
    """

    class Direction(models.IntegerChoices):
        A = -1, "A is better"
        SAME = 0, "About the same"
        B = 1, "B is better"

    turn = models.OneToOneField("tasks.Turn", on_delete=models.PROTECT, related_name="gold")
    expected = models.SmallIntegerField(choices=Direction.choices)
    # {"A": {axis_key: [low, high]}, "B": {...}}; an axis left out accepts any score.
    score_ranges = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Gold turn {self.turn_id}"


class JudgingTask(BaseModel):
    """A second judgement of an accepted turn by another contractor: the same prompt and the
    same two candidates (maybe in swapped slots), no prompt writing and no generation.

    The judgement is stored as the contractor saw it (their A is the turn's B when
    `swapped`); reviews.quality_pairs maps it back before comparing.
    """

    class Status(models.TextChoices):
        OPEN = "OPEN", "Open"
        TAKEN = "TAKEN", "Being judged"
        SUBMITTED = "SUBMITTED", "Submitted"

    project = models.ForeignKey(
        "tasks.Project", on_delete=models.PROTECT, related_name="judging_tasks"
    )
    turn = models.ForeignKey("tasks.Turn", on_delete=models.PROTECT, related_name="judging_tasks")
    # Set for a gold turn served to a contractor; None for overlap.
    gold = models.ForeignKey(
        GoldTurn, on_delete=models.PROTECT, null=True, blank=True, related_name="judging_tasks"
    )
    contractor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="judging_tasks",
    )
    swapped = models.BooleanField()
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True
    )
    taken_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    active_seconds = models.PositiveIntegerField(default=0)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The judgement, in the slots as shown; empty until submitted.
    preference = models.SmallIntegerField(null=True, blank=True)
    scores = models.JSONField(null=True, blank=True)
    justification = models.TextField(blank=True)
    # The project's judging rate, fixed when submitted (judging tasks are not reviewed).
    earned = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            # A turn is judged again once (by a second contractor); gold is served many times.
            models.UniqueConstraint(
                fields=["turn"],
                condition=Q(gold__isnull=True),
                name="judging_task_one_overlap_per_turn",
            ),
            # One contractor judges a turn at most once, gold or not.
            models.UniqueConstraint(
                fields=["turn", "contractor"],
                condition=Q(contractor__isnull=False),
                name="judging_task_one_per_contractor",
            ),
            models.CheckConstraint(
                condition=Q(status="OPEN") | Q(contractor__isnull=False),
                name="judging_task_taken_has_contractor",
            ),
            models.CheckConstraint(
                condition=~Q(status="SUBMITTED")
                | (Q(preference__gte=-3, preference__lte=3) & Q(scores__isnull=False)),
                name="judging_task_submitted_has_judgement",
            ),
        ]

    def __str__(self) -> str:
        return f"Judging task {self.pk} of turn {self.turn_id}"

    def take(self, *, by) -> None:
        """OPEN → TAKEN by a contractor (gold tasks are created already taken)."""
        move(self, to=self.Status.TAKEN, transitions=JUDGING_TRANSITIONS,
             contractor=by, taken_at=timezone.now())  # fmt: skip

    def lapse(self) -> None:
        """TAKEN → OPEN: held too long without a judgement; another contractor may take it."""
        move(self, to=self.Status.OPEN, transitions=JUDGING_TRANSITIONS,
             contractor=None, taken_at=None)  # fmt: skip

    def submit(self, *, preference: int, scores: dict, justification: str, earned) -> None:
        """TAKEN → SUBMITTED with the judgement and its pay."""
        move(self, to=self.Status.SUBMITTED, transitions=JUDGING_TRANSITIONS,
             preference=preference, scores=scores, justification=justification,
             earned=earned, submitted_at=timezone.now())  # fmt: skip


_J = JudgingTask.Status
JUDGING_TRANSITIONS: dict[str, set[str]] = {
    _J.OPEN: {_J.TAKEN},
    _J.TAKEN: {_J.SUBMITTED, _J.OPEN},
    _J.SUBMITTED: set(),
}


class SubmissionFlag(models.Model):
    """An effort or bias signal on one submission, for reviewers and admins only."""

    class Kind(models.TextChoices):
        FAST = "fast", "Time on task far below the project's median"
        DUPLICATE = "duplicate", "Justification nearly repeats an earlier one"
        ONE_SLOT = "one_slot", "Preference always on one slot"
        FLAT_SCORES = "flat_scores", "Scores never vary"

    submission = models.ForeignKey(
        "tasks.Submission", on_delete=models.CASCADE, related_name="flags"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # In words, with the figures behind it ("12 min against a median of 58 min").
    detail = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["submission", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["submission", "kind"], name="flag_one_per_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} on submission {self.submission_id}"


class ReviewAudit(BaseModel):
    """A second reviewer's look at an accepted task: the first decision upheld or overturned."""

    class Status(models.TextChoices):
        OPEN = "OPEN", "Open"
        TAKEN = "TAKEN", "Being audited"
        UPHELD = "UPHELD", "Upheld"
        OVERTURNED = "OVERTURNED", "Overturned"

    review = models.OneToOneField(Review, on_delete=models.PROTECT, related_name="audit")
    auditor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="audits",
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True
    )
    note = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="OPEN") | Q(auditor__isnull=False),
                name="audit_taken_has_auditor",
            ),
        ]

    def __str__(self) -> str:
        return f"Audit of review {self.review_id}"

    def take(self, *, by) -> None:
        """OPEN → TAKEN by a reviewer other than the one audited."""
        move(self, to=self.Status.TAKEN, transitions=AUDIT_TRANSITIONS, auditor=by)

    def decide(self, *, overturn: bool, note: str) -> None:
        """TAKEN → UPHELD or OVERTURNED."""
        to = self.Status.OVERTURNED if overturn else self.Status.UPHELD
        move(self, to=to, transitions=AUDIT_TRANSITIONS, note=note, decided_at=timezone.now())


_A = ReviewAudit.Status
AUDIT_TRANSITIONS: dict[str, set[str]] = {
    _A.OPEN: {_A.TAKEN},
    _A.TAKEN: {_A.UPHELD, _A.OVERTURNED},
    _A.UPHELD: set(),
    _A.OVERTURNED: set(),
}


# --- Dashboard aggregates (reviews/aggregates.py) ------------------------------------------
#
# Counts over the judgements the dashboard reads, per project, kept up to date by
# review_decide with INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n (never read,
# add, write back) and rebuilt from scratch by `manage.py dashboard_aggregates_rebuild`.
# The pair outcomes adaptive pairing reads too are tasks.PairOutcomeCount.


class ProjectDecisionCount(models.Model):
    """A project's totals: judged turns counted, review decisions, bounces among them, and
    closed (accepted or rejected) tasks with the review rounds they took."""

    project = models.OneToOneField("tasks.Project", on_delete=models.CASCADE, related_name="+")
    judged_turns = models.PositiveIntegerField(default=0)
    reviews = models.PositiveIntegerField(default=0)
    bounces = models.PositiveIntegerField(default=0)
    closed_tasks = models.PositiveIntegerField(default=0)
    closed_rounds = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"Decision counts of project {self.project_id}"


class ContractorSlotCount(WonLostTied):
    """Per project and contractor, how often their counted judgements preferred slot A,
    slot B, or neither (position bias)."""

    project = models.ForeignKey("tasks.Project", on_delete=models.CASCADE, related_name="+")
    contractor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "contractor"], name="contractor_slot_count_unique"
            )
        ]

    def __str__(self) -> str:
        return f"Slot counts of {self.contractor_id} in project {self.project_id}"


class ScoreCount(models.Model):
    """Per project, endpoint and rubric axis, how many counted candidates got each score."""

    project = models.ForeignKey("tasks.Project", on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey("tasks.ModelEndpoint", on_delete=models.CASCADE, related_name="+")
    axis = models.TextField()
    score = models.PositiveSmallIntegerField()
    n = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "endpoint", "axis", "score"], name="score_count_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.n} x {self.score} on {self.axis} for {self.endpoint_id}"


class CandidateCount(models.Model):
    """Per project and endpoint, the succeeded candidates of accepted tasks and how many of
    them applied cleanly."""

    project = models.ForeignKey("tasks.Project", on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey("tasks.ModelEndpoint", on_delete=models.CASCADE, related_name="+")
    clean = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "endpoint"], name="candidate_count_unique")
        ]

    def __str__(self) -> str:
        return f"{self.clean} of {self.total} clean for {self.endpoint_id}"


class TaskSecondsCount(models.Model):
    """Per project, how many closed (accepted or rejected) submitted tasks took each number
    of active seconds: the exact median time on task without sorting every task."""

    project = models.ForeignKey("tasks.Project", on_delete=models.CASCADE, related_name="+")
    seconds = models.PositiveIntegerField()
    n = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "seconds"], name="task_seconds_unique")
        ]

    def __str__(self) -> str:
        return f"{self.n} tasks of {self.seconds} s"


class AgreementCount(models.Model):
    """reviews.quality_agreement's count tables, kept as judging tasks are submitted: per
    project, grouping (0 reviewer, 1 first rater, 2 second rater), person, measure
    ("preference" or "<slot>:<axis>") and the two raters' values, how many pairs."""

    project = models.ForeignKey("tasks.Project", on_delete=models.CASCADE, related_name="+")
    grouping = models.PositiveSmallIntegerField()
    group_id = models.BigIntegerField()
    measure = models.TextField()
    x = models.IntegerField()
    y = models.IntegerField()
    n = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "grouping", "group_id", "measure", "x", "y"],
                name="agreement_count_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.n} pairs at ({self.x}, {self.y}) on {self.measure}"


class ReviewerAuditCount(models.Model):
    """Per project and audited reviewer, decided audits of their acceptances and how many
    were overturned, kept by audit_decide."""

    project = models.ForeignKey("tasks.Project", on_delete=models.CASCADE, related_name="+")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    audited = models.PositiveIntegerField(default=0)
    overturned = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "reviewer"], name="reviewer_audit_count_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.overturned} of {self.audited} overturned for {self.reviewer_id}"


class DayCount(models.Model):
    """Per kind ("s" submissions, "r" review decisions), project, day and person, how many:
    the dashboard's per-day throughput. Only days already over are stored (their rows no
    longer change), filled the first time a page needs them (see DayFilled)."""

    kind = models.CharField(max_length=1)
    project = models.ForeignKey("tasks.Project", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    n = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "project", "day", "person"], name="day_count_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.n} {self.kind} on {self.day}"


class DayFilled(models.Model):
    """A day whose DayCount rows are stored (a day with no activity has none)."""

    day = models.DateField(unique=True)

    def __str__(self) -> str:
        return f"Day counts of {self.day}"
