"""What changed in a task between one submission round and the one before it.

The reviewer of round N sees, per turn, which scores, preference and justification differ
from round N-1, and which turns (follow-ups) are new.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from tasks.models import Judgement, Preference, Task


@dataclass
class TurnChanges:
    is_new: bool = False
    preference_was: str | None = None
    # "A:security" -> the score in the previous round, for each score that changed.
    scores_was: dict[str, int] = field(default_factory=dict)
    # The justification as (op, text) runs: op is "same", "added" or "removed".
    justification_diff: list[tuple[str, str]] | None = None

    @property
    def any(self) -> bool:
        return bool(
            self.is_new or self.preference_was or self.scores_was or self.justification_diff
        )


def _word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """Runs of words kept, added and removed, so a reviewer sees the edit, not two blobs."""
    a = re.findall(r"\S+\s*", old)
    b = re.findall(r"\S+\s*", new)
    runs: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            runs.append(("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            runs.append(("removed", "".join(a[i1:i2])))
        if j2 > j1:
            runs.append(("added", "".join(b[j1:j2])))
    return runs


def round_changes(task: Task) -> dict[int, TurnChanges]:
    """Turn id → what changed in the task's current round since the previous one.

    Empty for a first round. Uses the judgements prefetched on the task's turns.
    """
    if task.round <= 1:
        return {}
    changes: dict[int, TurnChanges] = {}
    for turn in task.turns.all():
        by_round: dict[int, Judgement] = {j.round: j for j in turn.judgements.all()}
        now, before = by_round.get(task.round), by_round.get(task.round - 1)
        if now is None:
            continue
        change = TurnChanges()
        if before is None:
            change.is_new = True
        else:
            if now.preference != before.preference:
                change.preference_was = Preference(before.preference).label
            for slot, axes in now.scores.items():
                for axis, value in axes.items():
                    old = before.scores.get(slot, {}).get(axis)
                    if old != value:
                        change.scores_was[f"{slot}:{axis}"] = old
            if now.justification != before.justification:
                change.justification_diff = _word_diff(before.justification, now.justification)
        changes[turn.pk] = change
    return changes
