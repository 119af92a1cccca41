"""tasks.contradictions: the preference must agree with the weighted sum of the rubric scores.

Pure functions, so no database. Scores are written as four-tuples over AXES, A first.
"""

from __future__ import annotations

import itertools

import pytest

from tasks.contradictions import axis_weights, judgement_warnings, weight_error

AXES = ("correctness", "security", "reliability", "maintainability")


def scores(a: tuple[int, ...], b: tuple[int, ...]) -> dict[str, dict[str, int]]:
    return {"A": dict(zip(AXES, a, strict=True)), "B": dict(zip(AXES, b, strict=True))}


# (preference, A's scores, B's scores, weights, the fragment the single warning contains or None)
CASES = {
    # Direction: the preferred side's total is lower.
    "dominance: A higher everywhere, B preferred": (
        2, (4, 4, 4, 4), (2, 2, 2, 2), None, "You prefer B, but A's scores add up higher (16 vs 8).",
    ),
    "dominance: B higher everywhere, A preferred": (
        -2, (2, 3, 2, 3), (4, 4, 4, 4), None, "You prefer A, but B's scores add up higher (16 vs 10).",
    ),
    "mixed: A 4/5/4/4 vs B 2/5/2/3, B preferred": (
        2, (4, 5, 4, 4), (2, 5, 2, 3), None, "You prefer B, but A's scores add up higher (17 vs 12).",
    ),
    "mixed: A 4/5/4/4 vs B 2/5/2/3, A preferred": (-2, (4, 5, 4, 4), (2, 5, 2, 3), None, None),
    "mixed, one point apart, slight wrong way": (
        -1, (3, 4, 3, 3), (4, 4, 3, 3), None, "You prefer A, but B's scores add up higher (14 vs 13).",
    ),
    # Tie: 0 while the totals differ by at least the total weight (a point per axis).
    "tie with B higher everywhere": (
        0, (3, 3, 3, 3), (4, 4, 4, 4), None, "about the same, but B's scores add up clearly higher than A's (16 vs 12)",
    ),
    "tie with A higher everywhere": (
        0, (5, 5, 5, 5), (1, 1, 1, 1), None, "about the same, but A's scores add up clearly higher than B's (20 vs 4)",
    ),
    "tie with mixed differences adding up to the total weight": (
        0, (3, 3, 3, 3), (3, 4, 4, 5), None, "about the same, but B's scores",
    ),
    "tie with small mixed differences": (0, (3, 4, 3, 4), (4, 3, 4, 4), None, None),
    "tie three points apart on four axes": (0, (3, 3, 3, 3), (4, 4, 4, 3), None, None),
    # Strong preference (|p| >= 2) on equal totals.
    "much better B with identical scores": (
        3, (4, 4, 4, 4), (4, 4, 4, 4), None, "strong preference for B, but A's and B's scores add up to the same total (16 each).",
    ),
    "much better A with identical scores": (
        -3, (2, 3, 4, 5), (2, 3, 4, 5), None, "strong preference for A, but A's and B's scores add up to the same total (14 each).",
    ),
    "better B with equal totals on mixed axes": (
        2, (5, 3, 4, 4), (3, 5, 4, 4), None, "strong preference for B, but A's and B's scores",
    ),
    "slightly better with equal totals": (1, (5, 3, 4, 4), (3, 5, 4, 4), None, None),
    # Slight preference (|p| == 1) the right way, but the gap is at least twice the total weight.
    "slightly better A, A two points higher everywhere": (
        -1, (5, 5, 5, 5), (3, 3, 3, 3), None, "You prefer A only slightly, but A's scores are far higher than B's (20 vs 12); the scores suggest a stronger preference.",
    ),
    "slightly better B, B far higher": (
        1, (1, 2, 1, 2), (4, 4, 4, 4), None, "You prefer B only slightly, but B's scores are far higher",
    ),
    "slightly better A, gap just under twice the total weight": (
        -1, (5, 5, 5, 4), (3, 3, 3, 3), None, None,
    ),
    # Consistent strong preferences.
    "much better A, A far higher": (-3, (5, 5, 5, 5), (1, 1, 1, 1), None, None),
    "better B, B higher": (2, (2, 2, 2, 2), (4, 4, 4, 4), None, None),
    "better B, B higher on the sum only": (2, (5, 1, 3, 3), (3, 4, 3, 3), None, None),
    # Weights change the outcome.
    "heavy correctness flips the totals to A, B preferred": (
        2, (5, 3, 3, 3), (3, 4, 4, 4), {"correctness": 4}, "You prefer B, but A's scores add up higher (29 vs 24).",
    ),
    "same scores unweighted: B higher, B preferred": (2, (5, 3, 3, 3), (3, 4, 4, 4), None, None),
    "heavy correctness flips the totals to A, A preferred": (
        -2, (5, 3, 3, 3), (3, 4, 4, 4), {"correctness": 4}, None,
    ),
    "same scores unweighted: B higher, A preferred": (
        -2, (5, 3, 3, 3), (3, 4, 4, 4), None, "You prefer A, but B's scores add up higher (15 vs 14).",
    ),
    "weights raise the tie threshold with the total weight": (
        0, (3, 3, 3, 3), (3, 4, 4, 5), {"correctness": 5}, None,
    ),
    "fractional weights show fractional totals": (
        2, (5, 3, 3, 3), (3, 3, 3, 3), {"correctness": 1.5}, "A's scores add up higher (16.5 vs 13.5)",
    ),
    "float rounding of equal weighted totals is not a direction": (
        -1, (3, 3, 4, 3), (4, 4, 3, 3), {"correctness": 0.1, "security": 0.2, "reliability": 0.3}, None,
    ),
    "float rounding of equal weighted totals still counts as equal": (
        2, (3, 3, 4, 3), (4, 4, 3, 3), {"correctness": 0.1, "security": 0.2, "reliability": 0.3}, "strong preference for B",
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("preference", "a", "b", "weights", "expected"), list(CASES.values()), ids=list(CASES)
)
def test_judgement_warnings(preference, a, b, weights, expected):
    warnings = judgement_warnings(preference=preference, scores=scores(a, b), weights=weights)
    if expected is None:
        assert warnings == []
    else:
        assert len(warnings) == 1, warnings  # one contradiction, one message
        assert expected in warnings[0]


def test_each_judgement_gets_at_most_one_message_naming_slots_only():
    """Every preference against every score pair on two axes, weighted and not."""
    for weights in (None, {"correctness": 3}):
        for a1, a2, b1, b2 in itertools.product(range(1, 6), repeat=4):
            two_axes = {
                "A": {"correctness": a1, "security": a2},
                "B": {"correctness": b1, "security": b2},
            }
            for preference in range(-3, 4):
                warnings = judgement_warnings(
                    preference=preference, scores=two_axes, weights=weights
                )
                assert len(warnings) <= 1
                for message in warnings:
                    assert message.startswith("You ")
                    assert "A" in message and "B" in message


def test_weights_for_axes_not_scored_are_ignored():
    warnings = judgement_warnings(
        preference=2, scores=scores((4, 4, 4, 4), (2, 2, 2, 2)), weights={"style": 100}
    )
    assert warnings == ["You prefer B, but A's scores add up higher (16 vs 8)."]


def test_mismatched_axes_are_a_programming_error():
    bad = {"A": {"correctness": 3}, "B": {"security": 3}}
    with pytest.raises(ValueError, match="same axes"):
        judgement_warnings(preference=0, scores=bad)


@pytest.mark.parametrize("weight", [0, -1, float("nan"), True])
def test_bad_weights_are_a_programming_error(weight):
    with pytest.raises(ValueError, match="positive number"):
        judgement_warnings(
            preference=0, scores=scores((3, 3, 3, 3), (3, 3, 3, 3)), weights={"security": weight}
        )


def axis(key: str, **extra) -> dict:
    return {"key": key, "label": key.title(), "points": ["1", "2", "3", "4", "5"], **extra}


def test_axis_weights_default_to_one():
    rubric = [axis("correctness", weight=3), axis("security"), axis("style", weight=0.5)]
    weights = axis_weights(rubric)
    assert weights == {"correctness": 3.0, "security": 1.0, "style": 0.5}
    assert all(isinstance(w, float) for w in weights.values())


@pytest.mark.parametrize("weight", [1, 2.5, 0.01, 100])
def test_positive_weights_are_fine(weight):
    assert weight_error([axis("correctness"), axis("security", weight=weight)]) is None


def test_a_rubric_without_weights_is_fine():
    assert weight_error([axis("correctness"), axis("security")]) is None


@pytest.mark.parametrize(
    "weight", [0, -1, -0.5, "2", True, False, None, float("inf"), float("-inf"), float("nan"), [2]]
)
def test_bad_weights_are_reported(weight):
    message = weight_error([axis("correctness"), axis("security", weight=weight)])
    assert message is not None
    assert '"security"' in message
    assert "positive number" in message
