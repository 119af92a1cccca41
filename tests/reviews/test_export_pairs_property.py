"""Property: no pairwise record, in any format, has a chosen answer equal to its rejected one.

Records are drawn with answers from a tiny alphabet, so equal candidates (the same text, or
the same change with other whitespace) come up all the time, whatever the judgement says.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reviews import exports
from tasks import prompting

AXES = ("correctness", "security")
DIFFS = [
    "--- a/x.py\n+++ b/x.py\n@@ -1,1 +1,2 @@\n a = 1\n+b = 2\n",
    "--- a/x.py\n+++ b/x.py\n@@ -1,1 +1,2 @@\n a = 1\n+b  =  2   \n",  # the same change
    "--- a/x.py\n+++ b/x.py\n@@ -1,1 +1,2 @@\n a = 1\n+c = 3\n",
]


@st.composite
def candidates(draw) -> dict:
    explanation = draw(st.sampled_from(["Done.", "Added b.", "Done."]))
    diff = draw(st.sampled_from(DIFFS))
    return {
        "explanation": explanation,
        "diff": diff,
        "answer": prompting.assistant_text(explanation, diff),
    }


@st.composite
def records(draw) -> dict:
    a, b = draw(candidates()), draw(candidates())
    preference = draw(st.integers(-3, 3))
    scores = {s: {axis: draw(st.integers(1, 5)) for axis in AXES} for s in "AB"}
    return {
        "candidates": {"A": a, "B": b},
        "preference": preference,
        "preferred_slot": "A" if preference < 0 else "B" if preference > 0 else None,
        "scores": scores,
        # Stored by generation for new turns; None for turns older than the check.
        "identical_candidates": draw(
            st.sampled_from([None, exports.same_change(a["diff"], b["diff"])])
        ),
        "model_prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        "model_prompt_status": draw(st.sampled_from(["recorded", "recorded", "differs"])),
        "conversation": [{"role": "user", "content": "u"}],
    }


def _pairs(record: dict) -> list[tuple[list, list]]:
    made = [exports.trl_record(record), exports.trl_record(record, "bare")]
    made += [exports.criterion_record(record, axis) for axis in AXES]
    pairs = [(r["chosen"], r["rejected"]) for r in made if r is not None]
    for style in exports.PROMPT_STYLES:
        line = exports.openai_record(record, style)
        if line is not None:
            pairs.append((line["preferred_output"], line["non_preferred_output"]))
    return pairs


@settings(max_examples=400, deadline=None)
@given(records())
def test_chosen_never_equals_rejected(record):
    pairs = _pairs(record)
    for chosen, rejected in pairs:
        assert chosen != rejected
    if pairs:
        # Nor the same change dressed in other whitespace.
        a, b = record["candidates"]["A"], record["candidates"]["B"]
        assert not exports.same_change(a["diff"], b["diff"])


@settings(max_examples=200, deadline=None)
@given(records())
def test_a_real_preference_between_different_changes_is_exported(record):
    """The rule leaves out only what it must (otherwise the property above holds vacuously)."""
    a, b = record["candidates"]["A"], record["candidates"]["B"]
    comparable = (
        not exports.same_change(a["diff"], b["diff"])
        and a["answer"] != b["answer"]
        and record["model_prompt_status"] == "recorded"
    )
    if comparable and record["preference"] != 0:
        assert exports.trl_record(record) is not None
        assert exports.openai_record(record) is not None
    if not comparable:
        assert exports.trl_record(record) is None
        assert exports.openai_record(record) is None
