"""Effort and bias flags on a submission (issue 18), for reviewers and admins only.

A justification's MinHash signature (reviews/minhash.py) is stored with it
(Judgement.minhash), so a new justification is compared with a contractor's earlier ones
without rereading their text.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from django.db import transaction
from django.db.models import (
    Count,
    Exists,
    F,
    OuterRef,
    Prefetch,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce

from reviews.minhash import agreements, minhash
from reviews.models import SubmissionFlag
from reviews.quality_flag_inputs import (
    STREAK_LENGTH,
    FlagInputs,
    flag_inputs,
)
from tasks.models import Candidate, Judgement, Submission, Task

# Near-duplicate from here on (measured in tests/reviews/test_quality_flags.py): four words
# changed in a 35-word justification is a true similarity of about 0.64, which the 64-hash
# estimate can place two standard errors lower; different justifications of the same change
# share stock phrases ("zero divisor", "the new test") yet measure below 0.1.
DUPLICATE_THRESHOLD = 0.5

# A submission this much faster than the project's median cannot have had the candidates
# read; a quarter leaves room for quick but honest work on an easy task.
FAST_FRACTION = 4
# Below this many earlier submissions the project's median says little.
FAST_MIN_HISTORY = 10


# --- the rules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    kind: str
    detail: str


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{round(seconds)} s"
    return f"{round(seconds / 60)} min"


def fast_flag(*, submission: Submission, inputs: FlagInputs) -> Flag | None:
    """Time on task below 1/FAST_FRACTION of the median of the project's earlier submissions."""
    median = inputs.median_seconds
    if inputs.history < FAST_MIN_HISTORY or median is None:
        return None
    if submission.active_seconds * FAST_FRACTION >= median:
        return None
    return Flag(
        SubmissionFlag.Kind.FAST,
        f"Submitted after {_minutes(submission.active_seconds)} of work against a project "
        f"median of {_minutes(median)} over the last {inputs.history} submissions.",
    )


def duplicate_flag(*, inputs: FlagInputs) -> Flag | None:
    """A justification of this round nearly repeats one of the contractor's last
    DUPLICATE_LOOKBACK judgements in other tasks (the task's own earlier rounds are copies)."""
    earlier = inputs.earlier
    matches = []
    for own in inputs.own:
        alike = agreements(own.signature, earlier.signatures)
        similarity = float(alike.max()) if len(alike) else 0.0
        if similarity < DUPLICATE_THRESHOLD:
            continue
        # Of equally alike ones, the latest task's, as a max over (similarity, task, turn).
        task_id, number = max(
            (earlier.task_ids[i], earlier.turn_numbers[i])
            for i in np.flatnonzero(alike == similarity)
        )
        matches.append(((similarity, task_id, number), own.turn_number))
    if not matches:
        return None
    (similarity, task_id, number), turn_number = max(matches)
    detail = (
        f"The justification of turn {turn_number} is about {similarity:.0%} alike the one of "
        f"turn {number} in task #{task_id}"
    )
    if len(matches) > 1:
        detail += f"; {len(matches)} of this round's justifications repeat earlier ones"
    return Flag(SubmissionFlag.Kind.DUPLICATE, detail + ".")


def one_slot_flag(*, inputs: FlagInputs) -> Flag | None:
    """The contractor's last STREAK_LENGTH decisive preferences all chose the same slot."""
    latest = inputs.decisive
    slots = {Candidate.Slot.A if v.preference < 0 else Candidate.Slot.B for v in latest}
    if len(latest) < STREAK_LENGTH or len(slots) != 1:
        return None
    return Flag(
        SubmissionFlag.Kind.ONE_SLOT,
        f"The contractor's last {len(latest)} preferences that were not ties all chose "
        f"slot {slots.pop()}.",
    )


def _canonical(scores: object) -> object:
    if isinstance(scores, dict):
        return tuple(sorted((str(k), _canonical(v)) for k, v in scores.items()))
    return scores


def flat_scores_flag(*, inputs: FlagInputs) -> Flag | None:
    """The contractor's last STREAK_LENGTH judgements all carry exactly the same scores."""
    latest = inputs.latest
    if len(latest) < STREAK_LENGTH or len({_canonical(v.scores) for v in latest}) != 1:
        return None
    scores = latest[0].scores
    shown = ", ".join(
        f"{slot} {'/'.join(str(v) for _, v in sorted(axes.items()))}"
        for slot, axes in sorted(scores.items())
        if isinstance(axes, dict)
    )
    return Flag(
        SubmissionFlag.Kind.FLAT_SCORES,
        f"The contractor's last {len(latest)} judgements all gave the same scores ({shown}).",
    )


# No savepoint of its own inside the submit's transaction: a failure here fails the submit.
@transaction.atomic(savepoint=False)
def submission_flags_record(*, submission: Submission) -> list[SubmissionFlag]:
    """Store the MinHash of this round's justifications, then record the submission's flags.

    Idempotent: a flag is keyed by (submission, kind) and rewritten in place, so recording
    the same submission again never adds a row. Reads are bounded (FAST_LOOKBACK,
    DUPLICATE_LOOKBACK, STREAK_LENGTH rows). Nothing here is shown to the contractor.
    """
    inputs = flag_inputs(submission=submission)
    # Stored when the judgement is written (tasks.services._judge_turns, the one writer of
    # justifications, and a revision's copies); a row without one (written before that, or
    # by hand) gets it here.
    missing = [
        Judgement(pk=own.pk, minhash=minhash(own.justification))
        for own in inputs.own
        if not own.signature and own.justification.strip()
    ]
    if missing:
        Judgement.objects.bulk_update(missing, ["minhash"])
        computed = {judgement.pk: judgement.minhash for judgement in missing}
        inputs = replace(
            inputs,
            own=[replace(own, signature=computed.get(own.pk, own.signature)) for own in inputs.own],
        )
    found = [
        fast_flag(submission=submission, inputs=inputs),
        duplicate_flag(inputs=inputs),
        one_slot_flag(inputs=inputs),
        flat_scores_flag(inputs=inputs),
    ]
    flags = [
        SubmissionFlag(submission=submission, kind=flag.kind, detail=flag.detail[:300])
        for flag in found
        if flag is not None
    ]
    if flags:
        # One statement for every flag, rewritten in place when recorded again.
        SubmissionFlag.objects.bulk_create(
            flags,
            update_conflicts=True,
            unique_fields=["submission", "kind"],
            update_fields=["detail"],
        )
    return flags


# --- reads for reviewers ------------------------------------------------------------------

SORT_BY_FLAGS = "flags"


def tasks_with_flags(tasks: QuerySet[Task], *, flag: str = "") -> QuerySet[Task]:
    """Tasks annotated with `flag_count` (flags on their current round) and carrying
    `current_submissions` (that round's Submission, flags prefetched); only those with a flag
    of kind `flag` when one is given. Sort on `flag_count` to put the most flagged first.
    """
    current = SubmissionFlag.objects.filter(
        submission__task=OuterRef("pk"), submission__round=OuterRef("round")
    )
    count = current.order_by().values("submission__task").annotate(n=Count("pk")).values("n")
    tasks = tasks.annotate(flag_count=Coalesce(Subquery(count), 0)).prefetch_related(
        Prefetch(
            "submissions",
            queryset=Submission.objects.filter(round=F("task__round")).prefetch_related("flags"),
            to_attr="current_submissions",
        )
    )
    if flag:
        tasks = tasks.filter(Exists(current.filter(kind=flag)))
    return tasks


def task_current_flags(task: Task) -> list[SubmissionFlag]:
    """The flags on the task's current round, from `tasks_with_flags`' prefetch."""
    return [flag for s in task.current_submissions for flag in s.flags.all()]


def contractor_recent_flags(*, contractor_id: int, limit: int = 50) -> QuerySet[SubmissionFlag]:
    """A contractor's latest flags, newest first, for the admin's page on them."""
    return (
        SubmissionFlag.objects.filter(submission__task__contractor_id=contractor_id)
        .select_related("submission__task")
        .order_by("-created_at", "-pk")[:limit]
    )


def task_round_flags(*, task: Task) -> list[SubmissionFlag]:
    """The flags on the task's current round, for the review page."""
    return list(SubmissionFlag.objects.filter(submission__task=task, submission__round=task.round))
