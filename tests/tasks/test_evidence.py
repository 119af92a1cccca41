"""tasks/evidence.py: recipes, acceptance tests, reading check output, and deltas."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError

from tasks import evidence

GOOD_CHECK = {"name": "tests", "command": ["python", "-m", "pytest", "--junitxml={report}"],
              "kind": "tests", "timeout_seconds": 60}  # fmt: skip


def _errors(**overrides) -> dict[str, str]:
    recipe = {
        "setup_commands": [["python3", "-m", "venv", "{env}/venv"]],
        "checks": [GOOD_CHECK],
        "acceptance_command": list(evidence.DEFAULT_ACCEPTANCE_COMMAND),
        "setup_timeout_seconds": 300,
    }
    return evidence.recipe_errors(**(recipe | overrides))


def test_a_complete_recipe_has_no_errors():
    assert _errors() == {}


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"setup_commands": [["pip install -r requirements.txt"]]}, "setup_commands",
         "looks like a shell line"),
        ({"setup_commands": [["sh", "-c", "pip install x"]]}, "setup_commands",
         r'\["bash", "-c", "..."\]'),
        ({"setup_commands": [["bash", "-c", "x", "extra"]]}, "setup_commands", "shell line"),
        ({"setup_commands": "pip install x"}, "setup_commands", "at most 8 commands"),
        ({"setup_commands": [[]]}, "setup_commands", "argument list"),
        ({"setup_commands": [["python3", "{files}"]]}, "setup_commands",
         "acceptance command only"),
        ({"setup_timeout_seconds": 99999}, "setup_timeout_seconds", "Between 1 and 1200"),
        ({"checks": []}, "checks", "Between 1 and 8 checks"),
        ({"checks": [GOOD_CHECK | {"kind": "magic"}]}, "checks", "kind is one of"),
        ({"checks": [GOOD_CHECK | {"timeout_seconds": 0}]}, "checks", "timeout_seconds"),
        ({"checks": [GOOD_CHECK | {"timeout_seconds": True}]}, "checks", "timeout_seconds"),
        ({"checks": [GOOD_CHECK, GOOD_CHECK]}, "checks", "Two checks are named"),
        ({"checks": [GOOD_CHECK | {"shell": True}]}, "checks", "unknown field 'shell'"),
        ({"checks": [GOOD_CHECK | {"command": ["pytest"]}]}, "checks", "JUnit XML to {report}"),
        ({"checks": [GOOD_CHECK | {"name": "<b>x</b>"}]}, "checks", "short name"),
        ({"acceptance_command": ["python", "-m", "pytest"]}, "acceptance_command",
         "needs {files}"),
        ({"acceptance_command": ["a\x00b", "{files}"]}, "acceptance_command", "NUL"),
    ],
)  # fmt: skip
def test_a_recipe_that_cannot_be_run_as_written_is_refused_with_the_reason(
    overrides, field, message
):
    errors = _errors(**overrides)
    assert field in errors
    assert re.search(message, errors[field]), errors[field]


def test_placeholders_expand_and_files_spread_into_arguments():
    argv = ["{env}/venv/bin/python", "-m", "pytest", "--junitxml={report}", "{files}", "-q"]
    assert evidence.expand(argv, files=["tests/a.py", "tests/b.py"]) == [
        "/sandbox/env/venv/bin/python", "-m", "pytest", "--junitxml=/tmp/marlin-report.xml",
        "tests/a.py", "tests/b.py", "-q",
    ]  # fmt: skip


def test_the_recipe_digest_is_stable_and_changes_with_the_recipe():
    one = evidence.recipe_digest({"checks": [GOOD_CHECK], "setup": []})
    assert one == evidence.recipe_digest({"setup": [], "checks": [dict(GOOD_CHECK)]})
    assert one != evidence.recipe_digest({"checks": [GOOD_CHECK | {"timeout_seconds": 61}]})


# --- Acceptance tests --------------------------------------------------------------


def test_acceptance_tests_are_kept_as_path_and_content():
    tests = [{"path": " tests/test_accept.py ", "content": "def test_x():\n    assert 1\n"}]
    assert evidence.acceptance_tests_clean(tests) == [
        {"path": "tests/test_accept.py", "content": "def test_x():\n    assert 1\n"}
    ]
    assert evidence.acceptance_tests_clean(None) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([{"path": "../outside.py", "content": "x"}], "not a plain relative path"),
        ([{"path": "/etc/cron.d/x", "content": "x"}], "not a plain relative path"),
        ([{"path": ".git/hooks/pre-commit", "content": "x"}], "not a plain relative path"),
        ([{"path": "tests/.hidden/t.py", "content": "x"}], "not a plain relative path"),
        ([{"path": "tests//t.py", "content": "x"}], "not a plain relative path"),
        ([{"path": "t.py", "content": "   "}], "empty or not text"),
        ([{"path": "t.py", "content": "a\x00b"}], "empty or not text"),
        ([{"path": "t.py", "content": "x" * 100_001}], "over 100 KB"),
        ([{"path": "t.py", "content": "x"}, {"path": "t.py", "content": "y"}], "share the path"),
        ([{"path": f"t{i}.py", "content": "x"} for i in range(11)], "At most 10"),
        ([{"path": "t.py", "content": "x", "mode": "755"}], "only a path and a content"),
        ("tests/t.py", "a list of"),
    ],
)
def test_bad_acceptance_tests_are_refused_with_the_reason(value, message):
    with pytest.raises(ValidationError, match=message):
        evidence.acceptance_tests_clean(value)


# --- Reading output ----------------------------------------------------------------

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="tests.test_ops" name="test_add" time="0.001"/>
<testcase classname="tests.test_ops" name="test_div"><failure message="boom"/></testcase>
<testcase classname="tests.test_ops" name="test_err"><error message="x"/></testcase>
<testcase classname="tests.test_ops" name="test_skip"><skipped/></testcase>
<testcase classname="tests.test_ops" name="test_add" time="0.001"/>
</testsuite></testsuites>"""


def test_junit_reports_give_each_tests_outcome():
    assert evidence.junit_outcomes(JUNIT) == {
        "tests.test_ops::test_add": "passed",
        "tests.test_ops::test_div": "failed",
        "tests.test_ops::test_err": "failed",
        "tests.test_ops::test_skip": "skipped",
    }


def test_a_report_with_entities_or_garbage_is_unreadable_not_expanded():
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<testsuite><testcase classname="&b;" name="t"/></testsuite>'
    )
    assert evidence.junit_outcomes(bomb) is None
    assert evidence.junit_outcomes("not xml <") is None
    assert evidence.junit_outcomes("") is None


def test_lint_findings_lose_their_positions_so_moved_code_is_not_new():
    output = (
        "calc/ops.py:3:1: F401 `os` imported but unused\n"
        "calc/ops.py:10: E501 line too long\n"
        "Found 2 errors.\n"
    )
    assert evidence.findings(output) == [
        "calc/ops.py: F401 `os` imported but unused",
        "calc/ops.py: E501 line too long",
    ]
    assert evidence.findings_delta(
        ["a.py: F401 x", "a.py: F401 x", "b.py: E1 y"], ["a.py: F401 x", "c.py: W2 z"]
    ) == {"added": 1, "removed": 2}


# --- Deltas ------------------------------------------------------------------------


def test_tests_delta_tells_fixes_breaks_and_the_rest_apart():
    base = {"t::fixed": "failed", "t::broken": "passed", "t::still": "failed",
            "t::gone": "passed", "t::same": "passed"}  # fmt: skip
    after = {"t::fixed": "passed", "t::broken": "failed", "t::still": "failed",
             "t::same": "passed", "t::new_ok": "passed", "t::new_bad": "failed"}  # fmt: skip
    assert evidence.tests_delta(base, after) == {
        "fixes": ["t::fixed"],
        "breaks": ["t::broken", "t::gone"],
        "still_failing": ["t::still"],
        "added_passing": ["t::new_ok"],
        "added_failing": ["t::new_bad"],
    }


def _run(suite: dict[str, str], acceptance: dict[str, str] | None, *, applied=True) -> dict:
    return {
        "applied": applied,
        "checks": [
            {"name": "tests", "kind": "tests", "status": "passed", "tests": suite, "counts": {}}
        ],  # fmt: skip
        "acceptance": None
        if acceptance is None
        else {"name": "Acceptance tests", "kind": "tests", "status": "passed", "tests": acceptance},
    }


def test_summary_counts_each_test_once_across_the_suite_and_the_acceptance_run():
    # The suite collects the acceptance test too: it is one fix, not two.
    base = _run({"tests.test_ops::test_add": "passed", "tests.test_accept::test_zero": "failed"},
                {"tests.test_accept::test_zero": "failed"})  # fmt: skip
    fixing = _run({"tests.test_ops::test_add": "passed", "tests.test_accept::test_zero": "passed"},
                  {"tests.test_accept::test_zero": "passed"})  # fmt: skip
    breaking = _run({"tests.test_ops::test_add": "failed", "tests.test_accept::test_zero": "failed"},
                    {"tests.test_accept::test_zero": "failed"})  # fmt: skip
    paths = ["tests/test_accept.py"]
    good = evidence.summary(base=base, candidate=fixing, acceptance_paths=paths)
    bad = evidence.summary(base=base, candidate=breaking, acceptance_paths=paths)
    assert (good["fixes"], good["breaks"]) == (1, 0)
    assert (bad["fixes"], bad["breaks"]) == (0, 1)
    assert good["acceptance"] == [{"test": "tests.test_accept::test_zero", "outcome": "passed"}]
    assert (good["acceptance_passed"], good["acceptance_total"]) == (1, 1)
    assert (bad["acceptance_passed"], bad["acceptance_total"]) == (0, 1)
    assert good["checks"][0]["delta"] == {
        "base_status": "passed", "fixes": 1, "breaks": 0, "still_failing": 0,
        "added_passing": 0, "added_failing": 0,
    }  # fmt: skip
    assert evidence.clean_candidate(good) is True
    assert evidence.clean_candidate(bad) is False


def test_without_a_base_there_is_no_delta_and_a_change_that_did_not_apply_has_none():
    fixing = _run({"t::a": "passed"}, None)
    alone = evidence.summary(base=None, candidate=fixing, acceptance_paths=[])
    assert (alone["fixes"], alone["breaks"]) == (None, None)
    assert evidence.clean_candidate(alone) is None
    unapplied = evidence.summary(base=fixing, candidate=_run({}, None, applied=False),
                                 acceptance_paths=[])  # fmt: skip
    assert unapplied["applied"] is False
    assert evidence.clean_candidate(unapplied) is False


def test_acceptance_tests_the_command_never_collected_count_as_zero_of_zero():
    base = _run({"t::a": "passed"}, {})
    summary = evidence.summary(base=base, candidate=_run({"t::a": "passed"}, {}),
                               acceptance_paths=["tests/test_accept.py"])  # fmt: skip
    assert (summary["acceptance_passed"], summary["acceptance_total"]) == (0, 0)
    # Not "clean": the contractor's tests were never shown to pass.
    assert evidence.clean_candidate(summary) is False


@pytest.mark.parametrize(
    ("preference", "a", "b", "agrees"),
    [
        (-2, (1, 0), (0, 1), True),
        (2, (1, 0), (0, 1), False),
        (3, (0, 1), (1, 0), True),
        (0, (1, 0), (0, 1), False),
        (0, (1, 0), (1, 0), True),
        (-1, (1, 0), (1, 0), None),
    ],
)
def test_evidence_agrees_with_a_preference_that_points_its_way(preference, a, b, agrees):
    def summary(fixes_breaks):
        return {"applied": True, "fixes": fixes_breaks[0], "breaks": fixes_breaks[1]}

    assert evidence.evidence_agrees(preference, summary(a), summary(b)) is agrees


def test_no_evidence_on_either_side_means_no_verdict():
    some = {"applied": True, "fixes": 1, "breaks": 0}
    assert evidence.evidence_agrees(-3, some, None) is None
    assert evidence.evidence_agrees(-3, some, {"applied": False}) is None
