"""Does a contractor's overall preference agree with the rubric scores they gave?

The rule compares the preference with a *weighted sum* of the per-axis score differences,
d = sum(weight * (B - A)), rather than asking whether one side won on every axis. Real
judgements are mixed: A 4/5/4/4 against B 2/5/2/3 is a clear win for A even though the two
tie on one axis, and "one side is higher everywhere" never looks at it. A sum compares mixed
scores too, and the weights let a project say that, for example, correctness counts more
than style.

Thresholds are in units of the total weight W (the sum of the weights of the scored axes),
so "|d| >= W" means "on average a full point per axis" whatever the number of axes:

* direction: A preferred (preference < 0) while d > 0, or B preferred while d < 0;
* tie: preference 0 while |d| >= W;
* strong preference on equal totals: |preference| >= 2 while d == 0;
* slight preference on a large gap: |preference| == 1, same direction as d, |d| >= 2W.

The cases exclude one another, so a judgement gets at most one warning. Messages speak of
the slots A and B only; the contractor never learns which model is behind a slot.

Pure functions only: no database, no Django. `tasks.services` calls `judgement_warnings`,
and `Project.clean()` calls `weight_error` on the rubric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

# Totals this close (relative to the total weight) count as equal, so that weights such as
# 0.1/0.2/0.3 do not turn float rounding into a contradiction.
_TOLERANCE = 1e-9


def axis_weights(rubric_axes: list[dict]) -> dict[str, float]:
    """Axis key -> weight, 1.0 for an axis without a "weight". Assumes weight_error() passed."""
    return {axis["key"]: float(axis.get("weight", 1.0)) for axis in rubric_axes}


def weight_error(rubric_axes: list[dict]) -> str | None:
    """A message for the first axis whose "weight" is not a positive finite number, else None."""
    for number, axis in enumerate(rubric_axes, start=1):
        if not isinstance(axis, dict) or "weight" not in axis:
            continue
        weight = axis["weight"]
        if not _is_positive_number(weight):
            name = axis.get("key") if isinstance(axis.get("key"), str) else f"Axis {number}"
            return (
                f'The weight of "{name}" must be a positive number, like 1 or 2.5 '
                f"(got {weight!r}); leave it out for a weight of 1."
            )
    return None


def judgement_warnings(
    *,
    preference: int,
    scores: dict[str, dict[str, int]],
    weights: Mapping[str, float] | None = None,
) -> list[str]:
    """Contradictions between the overall preference and the rubric scores ([] if none).

    `scores` is {"A": {axis: 1..5}, "B": {axis: 1..5}} over the same axes; `weights` maps an
    axis to a positive weight (an axis missing from it, or weights=None, weighs 1).
    """
    a_scores, b_scores = scores["A"], scores["B"]
    if set(a_scores) != set(b_scores):
        raise ValueError("Scores for A and B must cover the same axes.")
    weights = weights or {}
    weight_of = {axis: weights.get(axis, 1.0) for axis in a_scores}
    for axis, weight in weight_of.items():
        if not _is_positive_number(weight):
            raise ValueError(f"The weight of {axis!r} must be a positive number, not {weight!r}.")

    total_weight = sum(weight_of.values())
    a_total = sum(weight_of[axis] * a_scores[axis] for axis in a_scores)
    b_total = sum(weight_of[axis] * b_scores[axis] for axis in a_scores)
    d = sum(weight_of[axis] * (b_scores[axis] - a_scores[axis]) for axis in a_scores)
    slack = _TOLERANCE * total_weight
    if abs(d) <= slack:
        d = 0.0

    preferred = "A" if preference < 0 else "B"
    higher, lower = ("B", "A") if d > 0 else ("A", "B")
    high_total, low_total = (b_total, a_total) if d > 0 else (a_total, b_total)
    totals = _totals(high_total, low_total)

    if preference != 0 and d != 0 and (preference > 0) != (d > 0):
        return [f"You prefer {preferred}, but {higher}'s scores add up higher ({totals})."]
    if preference == 0 and abs(d) >= total_weight - slack:
        return [
            f"You rate them about the same, but {higher}'s scores add up clearly higher than "
            f"{lower}'s ({totals}); that is at least a point per axis on average."
        ]
    if abs(preference) >= 2 and d == 0:
        return [
            f"You have a strong preference for {preferred}, but A's and B's scores add up "
            f"to the same total ({_number(a_total, _places(a_total))} each)."
        ]
    if abs(preference) == 1 and d != 0 and abs(d) >= 2 * total_weight - slack:
        return [
            f"You prefer {preferred} only slightly, but {higher}'s scores are far higher than "
            f"{lower}'s ({totals}); the scores suggest a stronger preference."
        ]
    return []


def _is_positive_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _totals(first: float, second: float) -> str:
    """Two totals as "17 vs 12" or "16.5 vs 13.25": up to two decimals, more only if needed
    to keep unequal totals from looking equal."""
    places = _places(first, second)
    while places < 6 and first != second and _number(first, places) == _number(second, places):
        places += 1
    return f"{_number(first, places)} vs {_number(second, places)}"


def _places(*values: float) -> int:
    """The fewest decimals (at most two) that show every value exactly."""
    for places in range(2):
        if all(abs(round(v, places) - v) <= _TOLERANCE * max(1.0, abs(v)) for v in values):
            return places
    return 2


def _number(value: float, places: int) -> str:
    text = f"{value:.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
