"""The rubric a new project starts with: four axes, each scored 1 to 5 with a description of
every point. A project's own copy (Project.rubric_axes) is what its judgements are scored on;
admins edit that copy, never this default."""

from __future__ import annotations

DEFAULT_RUBRIC_AXES: list[dict] = [
    {
        "key": "correctness",
        "label": "Correctness",
        "points": [
            "Wrong: does not do what was asked or breaks existing behaviour",
            "Mostly wrong: major parts missing or incorrect",
            "Partly right: works for the main case, misses important cases",
            "Right with minor slips",
            "Fully correct, including edge cases",
        ],
    },
    {
        "key": "security",
        "label": "Security",
        "points": [
            "Introduces a serious vulnerability",
            "Introduces a likely exploitable weakness",
            "Questionable handling of untrusted input or secrets",
            "Safe, small hardening opportunities missed",
            "Safe and defensive where it matters",
        ],
    },
    {
        "key": "reliability",
        "label": "Reliability",
        "points": [
            "Crashes or corrupts data",
            "Fails on common error paths",
            "Handles the happy path only",
            "Handles most failures sensibly",
            "Robust: errors, limits and concurrency handled",
        ],
    },
    {
        "key": "maintainability",
        "label": "Maintainability",
        "points": [
            "Unreadable or unmergeable",
            "Hard to follow; large duplication or wrong place",
            "Acceptable but needs rework before merging",
            "Clean with small style issues",
            "Idiomatic, well placed, easy to review",
        ],
    },
]


def default_rubric_axes() -> list[dict]:
    return [dict(axis, points=list(axis["points"])) for axis in DEFAULT_RUBRIC_AXES]
