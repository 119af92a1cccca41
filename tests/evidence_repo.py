"""The evidence fixture: a small Python project with a pytest suite and a bug.

Shared by tests/test_evidence_worker.py and bench/evidence_bench.py. `wordy` counts words
by splitting on single spaces (the bug: runs of whitespace count empty words) and writes its
report with `tomli_w`, a package the recipe's setup installs from the package index (pytest
does not pull it in, so the suite only passes when setup really installed it).

Two model answers: FIXING splits on any whitespace; BREAKING leaves the bug and drops the
"!" of `shout`, which an existing test checks.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from repos import git_client

FULL_NAME = "demo/wordy"
DEPENDENCY = "tomli_w"

TEXT = '''"""Small text utilities."""


def word_count(text):
    """How many words `text` holds, whatever whitespace separates them."""
    return len(text.split(" "))


def shout(text):
    return text.upper() + "!"
'''

FILES = {
    "README.md": "# wordy\n\nWord counts, as TOML.\n",
    "wordy/__init__.py": "",
    "wordy/text.py": TEXT,
    "wordy/report.py": (
        '"""A TOML report of a text\'s statistics."""\n\nimport tomli_w\n\n'
        "from wordy.text import word_count\n\n\ndef report(text):\n"
        '    return tomli_w.dumps({"words": word_count(text)})\n'
    ),
    "tests/test_text.py": (
        "from wordy.text import shout, word_count\n\n\n"
        "def test_word_count_between_single_spaces():\n"
        '    assert word_count("one two three") == 3\n\n\n'
        "def test_shout():\n"
        '    assert shout("hi") == "HI!"\n'
    ),
    "tests/test_report.py": (
        "from wordy.report import report\n\n\n"
        "def test_report_is_toml():\n"
        '    assert report("a b") == "words = 2\\n"\n'
    ),
}

# The contractor's hidden test: fails at the pinned commit ("one   two\tthree" splits on
# single spaces into 4 parts), passes once runs of whitespace separate words once.
ACCEPTANCE_TESTS = [
    {
        "path": "tests/test_acceptance.py",
        "content": (
            "from wordy.text import word_count\n\n\n"
            "def test_runs_of_whitespace_separate_words_once():\n"
            '    assert word_count("one   two\\tthree") == 3\n'
        ),
    }
]
ACCEPTANCE_TEST_ID = "tests.test_acceptance::test_runs_of_whitespace_separate_words_once"
BROKEN_TEST_ID = "tests.test_text::test_shout"

TESTS_COMMAND = ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml={report}"]
SETUP_COMMANDS = [
    ["python3", "-m", "venv", "{env}/venv"],
    ["{env}/venv/bin/pip", "install", "-q", "pytest", DEPENDENCY],
]
# Proof of where setup and checks ran: the uid and no_new_privs flag each saw, and the
# program at PID 1 of their PID namespace (bubblewrap itself, when sandboxed).
IDENTITY_SETUP = [
    "bash", "-c",
    'echo "setup uid: $(id -u)" > {env}/setup-identity.txt; '
    "grep NoNewPrivs /proc/self/status >> {env}/setup-identity.txt",
]  # fmt: skip
IDENTITY_CHECK = {
    "name": "sandbox",
    "kind": "status",
    "command": [
        "bash", "-c",
        'cat {env}/setup-identity.txt; echo "check uid: $(id -u)"; '
        "grep NoNewPrivs /proc/self/status; "
        "echo \"pid 1: $(tr '\\0' '\\n' < /proc/1/cmdline | head -n 1)\"",
    ],
}  # fmt: skip


def _diff(path: str, old: str, new: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}"
    )
    return "".join(lines)


FIXING_DIFF = _diff("wordy/text.py", TEXT, TEXT.replace('text.split(" ")', "text.split()"))
BREAKING_DIFF = _diff("wordy/text.py", TEXT, TEXT.replace('text.upper() + "!"', "text.upper()"))
FIXING_ANSWER = f"Split on any whitespace.\n\n```diff\n{FIXING_DIFF}```\n"
BREAKING_ANSWER = f"Tidied up shout.\n\n```diff\n{BREAKING_DIFF}```\n"
PROMPT = (
    "wordy.text.word_count counts empty words when words are separated by several spaces "
    "or tabs. Make runs of whitespace separate words once, without changing anything else."
)


def recipe_fields(*, identity: bool) -> dict:
    """CheckRecipe fields: venv + pytest + the dependency, the suite as a tests check, and
    (identity=True) a setup step and a check that report the sandbox they ran in."""
    setup = [*SETUP_COMMANDS, IDENTITY_SETUP] if identity else list(SETUP_COMMANDS)
    checks = [{"name": "tests", "kind": "tests", "command": TESTS_COMMAND}]
    if identity:
        checks.append(IDENTITY_CHECK)
    return {"setup_commands": setup, "setup_timeout_seconds": 600, "checks": checks}


def serve(git_root: Path, full_name: str = FULL_NAME) -> str:
    """Write the project as a bare repository under a git HTTP server's root; its sha."""
    owner, name = full_name.split("/")
    return git_client.create_bare_repository(
        git_root / owner / f"{name}.git", FILES, message="wordy: word counts as TOML"
    )
