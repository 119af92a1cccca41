"""Evidence: what a repository's checks and a contractor's acceptance tests say of a change.

Pure functions, no database and no processes: validating recipes and acceptance tests,
reading a check's output (JUnit XML, lint findings, exit status) and comparing a candidate's
results with the base commit's. Running the checks is tasks/evidence_sandbox.py; rows and
jobs are tasks/evidence_services.py.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections import Counter
from collections.abc import Iterable, Mapping

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from django.core.exceptions import ValidationError

# Where things are inside the sandbox: fixed, so a venv built by setup works in every check.
TREE = "/sandbox/tree"
ENV = "/sandbox/env"
REPORT = "/tmp/marlin-report.xml"  # noqa: S108 - the sandbox's own private tmpfs
PLACEHOLDERS = {"{tree}": TREE, "{env}": ENV, "{report}": REPORT}
FILES_PLACEHOLDER = "{files}"

CHECK_KINDS = ("tests", "findings", "status")
MAX_CHECKS = 8
MAX_SETUP_COMMANDS = 8
MAX_ARGS = 64
MAX_ARG_CHARS = 2000
MAX_SETUP_SECONDS = 1200
MAX_CHECK_SECONDS = 600
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "/bin/sh", "/bin/bash", "/usr/bin/bash"}

MAX_ACCEPTANCE_FILES = 10
MAX_ACCEPTANCE_BYTES = 100_000
# Kept per check: enough to compare suites of thousands of tests, never unbounded rows.
MAX_TESTS_KEPT = 20_000
MAX_FINDINGS_KEPT = 5_000
LOG_KEPT_CHARS = 64_000

DEFAULT_ACCEPTANCE_COMMAND = [
    "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml={report}", "{files}",
]  # fmt: skip

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


# --- Recipes -------------------------------------------------------------------------


def _argv_error(argv: object, where: str, *, allow_files: bool = False) -> str | None:
    if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
        return f'{where} is an argument list: ["program", "arg", ...].'
    if len(argv) > MAX_ARGS or any(len(a) > MAX_ARG_CHARS for a in argv):
        return f"{where} is too long (at most {MAX_ARGS} arguments of {MAX_ARG_CHARS} characters)."
    if any("\x00" in a for a in argv):
        return f"{where} contains a NUL character."
    if FILES_PLACEHOLDER in argv and not allow_files:
        return f"{where}: {{files}} belongs to the acceptance command only."
    program = argv[0]
    if posixpath.basename(program) in SHELLS or program in SHELLS:
        # A shell line is allowed only as the explicit form, so nobody writes one by accident.
        if posixpath.basename(program) != "bash" or len(argv) != 3 or argv[1] != "-c":
            return (
                f'{where}: a shell line must be written ["bash", "-c", "..."]; otherwise '
                "give the program and its arguments as a list."
            )
    elif " " in program and not program.startswith(("{", "/")):
        return f'{where}: "{program}" looks like a shell line; split it into arguments.'
    return None


def recipe_errors(
    *, setup_commands: object, checks: object, acceptance_command: object,
    setup_timeout_seconds: object,
) -> dict[str, str]:  # fmt: skip
    """Field → message for every problem in a recipe; empty when it can be run as it is."""
    errors: dict[str, str] = {}
    if not isinstance(setup_commands, list) or len(setup_commands) > MAX_SETUP_COMMANDS:
        errors["setup_commands"] = (
            f"A list of at most {MAX_SETUP_COMMANDS} commands, each an argument list."
        )
    else:
        for number, argv in enumerate(setup_commands, start=1):
            if problem := _argv_error(argv, f"Setup command {number}"):
                errors["setup_commands"] = problem
                break
    if not isinstance(setup_timeout_seconds, int) or not (
        1 <= setup_timeout_seconds <= MAX_SETUP_SECONDS
    ):
        errors["setup_timeout_seconds"] = f"Between 1 and {MAX_SETUP_SECONDS} seconds."
    if not isinstance(checks, list) or not checks or len(checks) > MAX_CHECKS:
        errors["checks"] = f"Between 1 and {MAX_CHECKS} checks."
    else:
        names: set[str] = set()
        for number, check in enumerate(checks, start=1):
            if problem := _check_error(check, number, names):
                errors["checks"] = problem
                break
    if problem := _argv_error(acceptance_command, "The acceptance command", allow_files=True):
        errors["acceptance_command"] = problem
    elif FILES_PLACEHOLDER not in acceptance_command:
        errors["acceptance_command"] = "The acceptance command needs {files} where the tests go."
    return errors


def _check_error(check: object, number: int, names: set[str]) -> str | None:
    where = f"Check {number}"
    if not isinstance(check, dict):
        return f'{where} is an object: {{"name": ..., "command": [...], "kind": ...}}.'
    unknown = set(check) - {"name", "command", "kind", "timeout_seconds"}
    if unknown:
        return f"{where}: unknown field {sorted(unknown)[0]!r}."
    name = check.get("name")
    if not (isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9][\w .:-]{0,59}", name)):
        return f"{where} needs a short name (letters, digits, spaces, . _ : -)."
    if name in names:
        return f"Two checks are named {name!r}."
    names.add(name)
    if problem := _argv_error(check.get("command"), f"{where} ({name})"):
        return problem
    kind = check.get("kind", "status")
    if kind not in CHECK_KINDS:
        return f"{where} ({name}): kind is one of {', '.join(CHECK_KINDS)}."
    if kind == "tests" and not any("{report}" in a for a in check["command"]):
        return f"{where} ({name}): a tests check writes JUnit XML to {{report}}."
    timeout = check.get("timeout_seconds", 300)
    if (
        not isinstance(timeout, int)
        or isinstance(timeout, bool)
        or not (1 <= timeout <= MAX_CHECK_SECONDS)
    ):
        return f"{where} ({name}): timeout_seconds is between 1 and {MAX_CHECK_SECONDS}."
    return None


def recipe_digest(payload: Mapping[str, object]) -> str:
    """A stable hash of what a recipe runs: equal recipes share their setup cache."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def expand(argv: Iterable[str], *, files: Iterable[str] = ()) -> list[str]:
    """The argument list with {tree}, {env}, {report} filled in and {files} spread out."""
    expanded: list[str] = []
    for arg in argv:
        if arg == FILES_PLACEHOLDER:
            expanded.extend(files)
            continue
        for placeholder, value in PLACEHOLDERS.items():
            arg = arg.replace(placeholder, value)
        expanded.append(arg)
    return expanded


# --- Acceptance tests ----------------------------------------------------------------

_PATH_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def acceptance_tests_clean(value: object) -> list[dict[str, str]]:
    """The contractor's acceptance tests as [{path, content}], or ValidationError saying why.

    Paths are plain relative paths inside the tree (no `..`, no hidden parts, no .git);
    contents are text of bounded size.
    """
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise ValidationError("Acceptance tests are a list of {path, content} objects.")
    if len(value) > MAX_ACCEPTANCE_FILES:
        raise ValidationError(f"At most {MAX_ACCEPTANCE_FILES} acceptance test files.")
    cleaned: list[dict[str, str]] = []
    seen: set[str] = set()
    for number, item in enumerate(value, start=1):
        if not isinstance(item, dict) or set(item) - {"path", "content"}:
            raise ValidationError(f"Acceptance test {number} has only a path and a content.")
        path, content = item.get("path"), item.get("content")
        if not isinstance(path, str) or not isinstance(content, str):
            raise ValidationError(f"Acceptance test {number} needs a path and a content.")
        path = path.strip()
        parts = path.split("/")
        if not path or len(path) > 300 or not all(_PATH_PART.fullmatch(p) for p in parts):
            raise ValidationError(
                f"Acceptance test {number}: {path[:100]!r} is not a plain relative path "
                "like tests/test_acceptance.py (no .., no leading /, no hidden folders)."
            )
        if path in seen:
            raise ValidationError(f"Two acceptance tests share the path {path}.")
        if len(content.encode()) > MAX_ACCEPTANCE_BYTES:
            raise ValidationError(
                f"Acceptance test {path} is over {MAX_ACCEPTANCE_BYTES // 1000} KB."
            )
        if "\x00" in content or not content.strip():
            raise ValidationError(f"Acceptance test {path} is empty or not text.")
        seen.add(path)
        cleaned.append({"path": path, "content": content})
    return cleaned


def acceptance_digest(tests: list[dict[str, str]]) -> str:
    return recipe_digest({"acceptance": tests})


def module_of(path: str) -> str:
    """tests/test_x.py → tests.test_x: how pytest's JUnit report names a file's tests."""
    return path.removesuffix(".py").replace("/", ".")


# --- Reading a check's output --------------------------------------------------------


def junit_outcomes(xml_text: str) -> dict[str, str] | None:
    """Test id ("classname::name") → passed / failed / skipped, or None if unreadable.

    A test reported twice (a rerun plugin) counts as failed if any report failed.
    """
    if not xml_text.strip():
        return None
    try:
        # The report comes from the candidate's own code: no DTDs, no entities.
        root = ElementTree.fromstring(xml_text, forbid_dtd=True)
    except (ElementTree.ParseError, DefusedXmlException):
        return None
    outcomes: dict[str, str] = {}
    for case in root.iter("testcase"):
        if len(outcomes) >= MAX_TESTS_KEPT:
            break
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        children = {child.tag for child in case}
        if children & {"failure", "error"}:
            outcome = FAILED
        elif "skipped" in children:
            outcome = SKIPPED
        else:
            outcome = PASSED
        if outcomes.get(test_id) != FAILED:
            outcomes[test_id] = outcome
    return outcomes


_FINDING_RE = re.compile(r"^(?P<path>[^\s:][^:]*):(?P<line>\d+)(?::(?P<col>\d+))?:\s*(?P<rest>.+)$")


def findings(output: str) -> list[str]:
    """Lint findings of `path:line[:col]: message` lines, without their positions, so that
    a change moving code does not count as new findings."""
    found: list[str] = []
    for line in output.splitlines():
        match = _FINDING_RE.match(line.strip())
        if match and len(found) < MAX_FINDINGS_KEPT:
            found.append(f"{match['path']}: {match['rest'].strip()}")
    return found


# --- Comparing with the base commit --------------------------------------------------


def merged_outcomes(checks: Iterable[Mapping]) -> dict[str, str]:
    """Every test id seen by the run's tests checks; failed anywhere is failed."""
    merged: dict[str, str] = {}
    for check in checks:
        for test_id, outcome in (check.get("tests") or {}).items():
            if merged.get(test_id) != FAILED:
                merged[test_id] = outcome
    return merged


def tests_delta(base: Mapping[str, str], candidate: Mapping[str, str]) -> dict[str, list[str]]:
    """fixes: failing at base, passing now; breaks: passing at base, failing or gone now."""
    delta: dict[str, list[str]] = {
        "fixes": [], "breaks": [], "still_failing": [], "added_passing": [], "added_failing": [],
    }  # fmt: skip
    for test_id in sorted(set(base) | set(candidate)):
        before, after = base.get(test_id), candidate.get(test_id)
        if before == FAILED and after == PASSED:
            delta["fixes"].append(test_id)
        elif before == PASSED and after in (FAILED, None):
            delta["breaks"].append(test_id)
        elif before == FAILED and after in (FAILED, None):
            delta["still_failing"].append(test_id)
        elif before is None and after == PASSED:
            delta["added_passing"].append(test_id)
        elif before is None and after == FAILED:
            delta["added_failing"].append(test_id)
    return delta


def findings_delta(base: Iterable[str], candidate: Iterable[str]) -> dict[str, int]:
    before, after = Counter(base), Counter(candidate)
    return {
        "added": sum((after - before).values()),
        "removed": sum((before - after).values()),
    }


def check_delta(base: Mapping | None, candidate: Mapping) -> dict:
    """What one check says of the candidate against the same check at the base commit."""
    delta: dict = {"base_status": base["status"] if base else None}
    if candidate["kind"] == "tests" and base is not None:
        tests = tests_delta(base.get("tests") or {}, candidate.get("tests") or {})
        delta |= {key: len(ids) for key, ids in tests.items()}
    elif candidate["kind"] == "findings" and base is not None:
        delta |= findings_delta(base.get("findings") or [], candidate.get("findings") or [])
    return delta


def acceptance_results(acceptance: Mapping | None, paths: Iterable[str]) -> list[dict[str, str]]:
    """Each acceptance test's outcome on this tree, by test id, in report order."""
    if not acceptance:
        return []
    modules = tuple(module_of(path) for path in paths)
    results = []
    for test_id, outcome in (acceptance.get("tests") or {}).items():
        classname = test_id.split("::", 1)[0]
        if any(classname == m or classname.startswith(m + ".") for m in modules):
            results.append({"test": test_id, "outcome": outcome})
    return results


def summary(*, base: Mapping | None, candidate: Mapping, acceptance_paths: Iterable[str]) -> dict:
    """The candidate's evidence against the base run: the figures shown and exported.

    `base` and `candidate` are the two runs' stored results ({"checks": [...],
    "acceptance": {...} | None, "applied": bool}).
    """
    paths = list(acceptance_paths)
    if not candidate.get("applied", True):
        return {"applied": False, "fixes": None, "breaks": None, "checks": [], "acceptance": []}
    base_checks = {c["name"]: c for c in (base or {}).get("checks", [])}
    checks = []
    for check in candidate.get("checks", []):
        checks.append(
            {
                "name": check["name"],
                "kind": check["kind"],
                "status": check["status"],
                "duration_ms": check.get("duration_ms"),
                "counts": check.get("counts", {}),
                "delta": check_delta(base_checks.get(check["name"]), check),
            }
        )
    acceptance = acceptance_results(candidate.get("acceptance"), paths)
    fixes = breaks = None
    if base is not None:
        runs_before = [*base.get("checks", []), *filter(None, [base.get("acceptance")])]
        runs_after = [*candidate.get("checks", []), *filter(None, [candidate.get("acceptance")])]
        delta = tests_delta(merged_outcomes(runs_before), merged_outcomes(runs_after))
        fixes, breaks = len(delta["fixes"]), len(delta["breaks"])
    passed = sum(1 for result in acceptance if result["outcome"] == PASSED)
    return {
        "applied": True,
        "fixes": fixes,
        "breaks": breaks,
        "checks": checks,
        "acceptance": acceptance,
        "acceptance_passed": passed if paths else None,
        # 0 with acceptance tests given: the acceptance command did not collect them.
        "acceptance_total": len(acceptance) if paths else None,
    }


def evidence_score(summary_: Mapping | None) -> int | None:
    """One number to rank two candidates by: tests fixed minus tests broken (None: no
    evidence, or a change that did not apply)."""
    if not summary_ or not summary_.get("applied") or summary_.get("fixes") is None:
        return None
    return summary_["fixes"] - summary_["breaks"]


def evidence_agrees(
    preference: int, summary_a: Mapping | None, summary_b: Mapping | None
) -> bool | None:
    """Whether the evidence points the same way as a preference (-3 A … +3 B).

    None when there is nothing to compare (no evidence, or it cannot tell the two apart);
    a preference of "about the same" agrees only with evidence that cannot tell them apart.
    """
    score_a, score_b = evidence_score(summary_a), evidence_score(summary_b)
    if score_a is None or score_b is None:
        return None
    if score_a == score_b:
        return None if preference else True
    favours_b = score_b > score_a
    if preference == 0:
        return False
    return (preference > 0) == favours_b


def clean_candidate(summary_: Mapping | None) -> bool | None:
    """Passes every acceptance test and breaks no test that passed at the base commit."""
    if not summary_ or summary_.get("fixes") is None:
        return None if not summary_ or summary_.get("applied", True) else False
    total = summary_.get("acceptance_total")
    passes_acceptance = total is None or (total > 0 and summary_["acceptance_passed"] == total)
    return bool(passes_acceptance and summary_["breaks"] == 0)
