"""Quality control in exports (issue 18): each record's agreement group, second judgements,
gold answer and effort flags, read per chunk of tasks; and which contractors meet an export's
agreement or gold threshold.

A second judgement is a submitted judging task of the turn (overlap, or a gold turn served
to someone), mapped back to the turn's own slots. A contractor's agreement is measured on the
same pairs as the dashboard's (reviews.quality_agreement.agreement_pairs), on the direction
of the preference only (A better, about the same, B better), counted by the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Case, Count, F, IntegerField, Q, Value, When
from django.db.models.functions import Sign

from marlin.lookups import IdList
from reviews.models import GoldTurn, JudgingTask, SubmissionFlag
from reviews.quality_agreement import agreement_pairs
from reviews.quality_gold import gold_accuracy_by_contractor, in_turn_slots
from tasks.models import Project

_SECOND_FIELDS = (
    "turn__task_id", "turn__number", "turn_id", "contractor_id", "swapped", "preference",
    "scores", "justification", "submitted_at", "gold_id",
)  # fmt: skip


@dataclass(frozen=True)
class ChunkQuality:
    """The quality rows of a chunk of tasks, keyed the way its records are built."""

    # (task id, turn number) -> (turn id, its second judgements, oldest first)
    second: dict[tuple[int, int], tuple[int, list[dict]]] = field(default_factory=dict)
    # (task id, turn number) -> the gold answer
    gold: dict[tuple[int, int], dict] = field(default_factory=dict)
    # (task id, round) -> the kinds of the flags on that round's submission
    flags: dict[tuple[int, int], list[str]] = field(default_factory=dict)


def chunk_quality(task_ids: list[int]) -> ChunkQuality:
    """Every quality row of these tasks: one query per table, whatever their number."""
    return ChunkQuality(
        second=_second_judgements(task_ids),
        gold=_gold(task_ids),
        flags=_flags(task_ids),
    )


def _second_judgements(task_ids: list[int]) -> dict[tuple[int, int], tuple[int, list[dict]]]:
    rows = (
        JudgingTask.objects.filter(
            turn__task_id__any_of=IdList(task_ids), status=JudgingTask.Status.SUBMITTED
        )
        .order_by("turn_id", "submitted_at", "pk")
        .values_list(*_SECOND_FIELDS)
    )
    found: dict[tuple[int, int], tuple[int, list[dict]]] = {}
    for (
        task_id,
        number,
        turn_id,
        contractor_id,
        swapped,
        preference,
        scores,
        text,
        at,
        gold,
    ) in rows:
        # Stored as shown; an unsaved instance lets the one mapping in quality_gold apply.
        shown = JudgingTask(swapped=swapped, preference=preference, scores=scores)
        preference, scores = in_turn_slots(judging_task=shown)
        found.setdefault((task_id, number), (turn_id, []))[1].append(
            {
                "contractor_id": contractor_id,
                "preference": preference,
                "scores": scores,
                "justification": text,
                "submitted_at": at.isoformat() if at else None,
                # A gold turn served to this contractor, graded against the gold answer.
                "is_gold": gold is not None,
            }
        )
    return found


def _gold(task_ids: list[int]) -> dict[tuple[int, int], dict]:
    rows = GoldTurn.objects.filter(turn__task_id__any_of=IdList(task_ids)).values_list(
        "turn__task_id", "turn__number", "expected", "score_ranges", "is_active"
    )
    return {
        (task_id, number): {"expected": expected, "score_ranges": ranges, "is_active": active}
        for task_id, number, expected, ranges, active in rows
    }


def _flags(task_ids: list[int]) -> dict[tuple[int, int], list[str]]:
    rows = (
        SubmissionFlag.objects.filter(submission__task_id__any_of=IdList(task_ids))
        .order_by("submission__task_id", "submission__round", "kind")
        .values_list("submission__task_id", "submission__round", "kind")
    )
    found: dict[tuple[int, int], list[str]] = {}
    for task_id, round_number, kind in rows:
        found.setdefault((task_id, round_number), []).append(kind)
    return found


def record_quality(
    quality: ChunkQuality, *, task_id: int, turn: int, round_judged: int
) -> dict[str, Any]:
    """The `quality` block of one native record (the same keys on every record)."""
    turn_id, second = quality.second.get((task_id, turn), (None, []))
    return {
        # Shared by every judgement of the turn (the record's and the second ones); None
        # when nobody else judged it.
        "agreement_group": f"turn-{turn_id}" if second else None,
        "second_judgements": second,
        "gold": quality.gold.get((task_id, turn)),
        # The flags of the submission whose judgement the record carries.
        "flags": quality.flags.get((task_id, round_judged), []),
    }


# --- Thresholds ----------------------------------------------------------------------------


def _turn_direction() -> Case:
    """The second rater's direction in the turn's slots (swapped: their A is the turn's B)."""
    return Case(
        When(swapped=True, then=Sign(F("preference")) * Value(-1)),
        default=Sign(F("preference")),
        output_field=IntegerField(),
    )


def contractor_direction_agreement(*, project: Project | None = None) -> dict[int, tuple[int, int]]:
    """contractor id -> (pairs whose preference directions matched, pairs), counting every
    pair where they were either rater. One grouped query: a row per pair of raters."""
    rows = (
        agreement_pairs(project)
        .annotate(
            first=F("turn__task__contractor_id"),
            second=F("contractor_id"),
            first_way=Sign(F("original__preference")),
            second_way=_turn_direction(),
        )
        .values("first", "second")
        .annotate(pairs=Count("pk"), agreeing=Count("pk", filter=Q(first_way=F("second_way"))))
        .order_by()
    )
    tally: dict[int, list[int]] = {}
    for row in rows:
        for rater in (row["first"], row["second"]):
            entry = tally.setdefault(rater, [0, 0])
            entry[0] += row["agreeing"]
            entry[1] += row["pairs"]
    return {rater: (agreeing, pairs) for rater, (agreeing, pairs) in tally.items()}


def _meeting(shares: Iterable[tuple[int, int, int]], threshold: float) -> list[int]:
    """The ids whose share (right / of) is at least the threshold; none measured, none kept."""
    return sorted(pk for pk, right, of in shares if of and right / of >= threshold)


def contractors_meeting_agreement(*, threshold: float, project: Project | None) -> list[int]:
    counts = contractor_direction_agreement(project=project)
    return _meeting(((pk, a, n) for pk, (a, n) in counts.items()), threshold)


def contractors_meeting_gold(*, threshold: float, project: Project | None) -> list[int]:
    graded = gold_accuracy_by_contractor(project=project)
    return _meeting(((pk, g.right, g.graded) for pk, g in graded.items()), threshold)
