"""Gold turns: accepted turns with a known answer, and each contractor's accuracy on them.

A gold judging task is right when its preference points the expected way (about the same
counts as its own direction) and every score lies in its tolerated range; both are read in
the turn's own slots, so a task shown swapped is mapped back first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction

from marlin.exceptions import ApplicationError, ConflictError, PermissionDeniedError
from marlin.permissions import can_oversee
from reviews.models import GoldTurn, JudgingTask
from tasks.models import Project, Task, Turn

if TYPE_CHECKING:
    from django.contrib.auth.models import User

SLOTS = ("A", "B")


def direction(preference: int) -> int:
    return (preference > 0) - (preference < 0)


def in_turn_slots(*, judging_task: JudgingTask) -> tuple[int, dict[str, dict[str, int]]]:
    """The judging task's preference and scores in the turn's own slots."""
    preference, scores = judging_task.preference, judging_task.scores or {}
    if judging_task.swapped:
        return -preference, {"A": scores.get("B", {}), "B": scores.get("A", {})}
    return preference, scores


def _clean_ranges(*, project: Project, score_ranges: Any) -> dict[str, dict[str, list[int]]]:
    if score_ranges in (None, ""):
        return {}
    if not isinstance(score_ranges, dict) or not set(score_ranges) <= set(SLOTS):
        raise ApplicationError('Score ranges are {"A": {axis: [low, high]}, "B": {...}}.')
    axes = set(project.axis_keys)
    clean: dict[str, dict[str, list[int]]] = {}
    for slot, ranges in score_ranges.items():
        if not isinstance(ranges, dict) or not set(ranges) <= axes:
            raise ApplicationError(f"Score ranges of {slot} name an axis the project lacks.")
        for axis, bounds in ranges.items():
            if not (
                isinstance(bounds, list)
                and len(bounds) == 2
                and all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
                and 1 <= bounds[0] <= bounds[1] <= 5
            ):
                raise ApplicationError(
                    f"The range of {slot} {axis} must be [low, high] with 1 <= low <= high <= 5."
                )
            clean.setdefault(slot, {})[axis] = list(bounds)
    return clean


def gold_turn_check(*, turn: Turn, expected: Any, score_ranges: Any) -> dict:
    """The score ranges cleaned, once the turn may be gold with this answer."""
    # Read again: the caller's task may be older than its acceptance.
    task = Task.objects.select_related("project").get(pk=turn.task_id)
    if task.status != Task.Status.ACCEPTED:
        raise ApplicationError("Only a turn of an accepted task can be gold.")
    if turn.has_identical_candidates:
        raise ApplicationError("Both candidates of this turn made the same change.")
    if expected not in GoldTurn.Direction.values:
        raise ApplicationError("The expected direction is -1 (A), 0 (about the same) or 1 (B).")
    return _clean_ranges(project=task.project, score_ranges=score_ranges)


@transaction.atomic
def gold_turn_mark(*, turn: Turn, by: User, expected: int, score_ranges: Any = None) -> GoldTurn:
    """Make an accepted turn gold, with the expected direction (-1 A, 0 same, 1 B) and the
    tolerated score ranges."""
    if not can_oversee(by):
        raise PermissionDeniedError("Only admins mark gold turns.")
    ranges = gold_turn_check(turn=turn, expected=expected, score_ranges=score_ranges)
    try:
        with transaction.atomic():
            return GoldTurn.objects.create(
                turn=turn, expected=expected, score_ranges=ranges, created_by=by
            )
    except IntegrityError as exc:
        raise ConflictError("This turn is gold already.") from exc


def gold_grade(*, judging_task: JudgingTask) -> bool:
    """Whether a submitted gold judging task matches its gold turn."""
    gold = judging_task.gold
    preference, scores = in_turn_slots(judging_task=judging_task)
    if direction(preference) != gold.expected:
        return False
    for slot, ranges in gold.score_ranges.items():
        for axis, (low, high) in ranges.items():
            if not low <= scores.get(slot, {}).get(axis, 0) <= high:
                return False
    return True


@dataclass(frozen=True)
class GoldAccuracy:
    contractor_id: int
    username: str
    graded: int
    right: int

    @property
    def accuracy(self) -> float:
        return self.right / self.graded


def gold_accuracy_by_contractor(*, project: Project | None = None) -> dict[int, GoldAccuracy]:
    """Each contractor's gold judging tasks graded and how many were right.

    Graded in Python: gold tasks are a few per contractor (the project's gold share of their
    judging work), and the score ranges are per gold turn.
    """
    rows = JudgingTask.objects.filter(
        gold__isnull=False, status=JudgingTask.Status.SUBMITTED
    ).select_related("gold", "contractor")
    if project is not None:
        rows = rows.filter(project=project)
    tally: dict[int, list] = {}
    for row in rows:
        entry = tally.setdefault(row.contractor_id, [row.contractor.username, 0, 0])
        entry[1] += 1
        entry[2] += gold_grade(judging_task=row)
    return {
        pk: GoldAccuracy(contractor_id=pk, username=name, graded=graded, right=right)
        for pk, (name, graded, right) in tally.items()
    }


GOLD_IMPORT_MAX_LINES = 10_000


def _gold_line(number: int, text: str) -> tuple[Turn, int, Any]:
    """One line of a gold file: {"task_id", "turn", "expected", "score_ranges"?}."""
    try:
        entry = json.loads(text)
    except ValueError as exc:
        raise ApplicationError(f"Line {number}: not JSON ({exc.msg}).") from exc
    if not isinstance(entry, dict):
        raise ApplicationError(f"Line {number}: expected an object.")
    unknown = set(entry) - {"task_id", "turn", "expected", "score_ranges"}
    if unknown:
        raise ApplicationError(f"Line {number}: unknown field {sorted(unknown)[0]!r}.")
    task_id, number_in_task = entry.get("task_id"), entry.get("turn", 1)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (task_id, number_in_task)):
        raise ApplicationError(f"Line {number}: task_id and turn are whole numbers.")
    turn = Turn.objects.filter(task_id=task_id, number=number_in_task).first()
    if turn is None:
        raise ApplicationError(f"Line {number}: task {task_id} has no turn {number_in_task}.")
    return turn, entry.get("expected"), entry.get("score_ranges")


@transaction.atomic
def gold_turns_import(*, lines: Iterable[str], by: User) -> list[GoldTurn]:
    """Mark many accepted turns gold from JSON lines, all or none: the first bad line is named
    and nothing of the file is kept."""
    if not can_oversee(by):
        raise PermissionDeniedError("Only admins mark gold turns.")
    made = []
    for number, text in enumerate(lines, start=1):
        if number > GOLD_IMPORT_MAX_LINES:
            raise ApplicationError(f"At most {GOLD_IMPORT_MAX_LINES} gold turns per file.")
        if not text.strip():
            continue
        turn, expected, ranges = _gold_line(number, text)
        try:
            made.append(gold_turn_mark(turn=turn, by=by, expected=expected, score_ranges=ranges))
        except ApplicationError as exc:
            raise ApplicationError(f"Line {number}: {exc.message}") from exc
    return made
