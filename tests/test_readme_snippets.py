"""The README's shell snippets run as written.

Every command in a shell block of README.md is either run here, against a fresh demo seed
(what `scripts/dev.py run` sets up), or listed in NOT_RUN with the reason it cannot run in a
test. A command in neither list fails the test, so no unchecked snippet gets in. The Python
blocks (a trainer loading the exports) run too, on the files the commands wrote.

The commands run as they are written, from a folder standing in for the repository root
(`.venv` and `manage.py` linked to the real ones), so the files they write land in the test's
temporary folder and not in the checkout; the database is a throwaway SQLite file there.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.sqlite_shell import sqlite_shell_env

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SHELLS = {"sh", "bash", "shell", "console", "zsh"}

# Run against the demo seed; each writes the file it names with -o, which must hold records.
RUN = [
    '.venv/bin/python manage.py export_dataset --project "Demo project" --format trl -o trl.jsonl',
    ".venv/bin/python manage.py export_dataset --format native --kind bug_fix --min-strength 1 "
    "--submitted-from 2026-01-01 -o native.jsonl",
    ".venv/bin/python manage.py export_dataset --format openai --prompt-style bare -o openai.jsonl",
]
NOT_RUN = {
    "python3 scripts/dev.py run": "starts the web server, a worker and the git server until "
    "Ctrl-C (its migrate and demo_setup steps run here, before the commands of RUN)",
    "python3 scripts/dev.py test": "runs the whole test suite, this test included",
    "DATABASE_URL=postgres://postgres@127.0.0.1:5432/marlin REDIS_URL=redis://127.0.0.1:6379/0 "
    "python3 scripts/dev.py test": "runs the whole test suite, this test included",
    "cp .env.example .env": "prepares `docker compose`, which a test cannot run "
    "(tests/marlin/test_docker_compose.py checks the compose file instead)",
    "docker compose up -d --build": "needs Docker and builds images",
    ".venv/bin/python manage.py export_dataset --format trl --min-contractor-agreement 0.7 "
    "--min-gold-accuracy 0.8 -o trusted.jsonl": "the demo seed has no turn judged twice and "
    "no gold, so it matches 0 records and exits 1; "
    "tests/reviews/test_export_quality.py runs the command with both thresholds",
}

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[ \t]*\n(?P<body>.*?)^(?P=indent)```",
    re.MULTILINE | re.DOTALL,
)


def blocks(language: set[str]) -> list[str]:
    """The bodies of the README's fenced blocks in these languages, dedented."""
    text = README.read_text()
    return [
        textwrap.dedent(m["body"]) for m in _FENCE.finditer(text) if m["lang"].lower() in language
    ]


def commands(block: str) -> list[tuple[str, str]]:
    """(as written, as a key) for each command of a shell block: continuation lines joined,
    comments dropped, spaces collapsed in the key."""
    found = []
    for written in re.split(r"(?<!\\)\n", block.strip()):
        if not written.strip() or written.lstrip().startswith("#"):
            continue
        key = " ".join(re.sub(r"\s#\s.*$", "", written.replace("\\\n", " ")).split())
        found.append((written, key))
    return found


def readme_commands() -> dict[str, str]:
    return {key: written for block in blocks(SHELLS) for written, key in commands(block)}


def test_every_readme_shell_command_is_run_or_excused():
    found = readme_commands()
    assert len(found) >= len(RUN) + 3  # the parser sees the blocks
    unknown = [key for key in found if key not in RUN and key not in NOT_RUN]
    assert not unknown, (
        "README shell commands neither run by this test (RUN) nor excused with a reason "
        f"(NOT_RUN): {unknown}"
    )
    stale = [key for key in [*RUN, *NOT_RUN] if key not in found]
    assert not stale, f"no longer in the README: {stale}"


def test_the_parser_finds_commands_in_indented_blocks_and_joins_continued_lines():
    block = textwrap.dedent(
        """\
        # a comment line
        a --x 1 \\
            --y 2   # and a comment
        b "two  words"
        """
    )
    assert commands(block) == [
        ("a --x 1 \\\n    --y 2   # and a comment", "a --x 1 --y 2"),
        ('b "two  words"', 'b "two words"'),
    ]
    text = "- item\n\n  ```sh\n  one\n  ```\n\n```bash\ntwo\n```\n```python\nthree\n```\n"
    assert [m["body"] for m in _FENCE.finditer(text)] == ["  one\n", "two\n", "three\n"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def demo_checkout(tmp_path):
    """A folder standing in for the repository root, with the demo seeded as `dev.py run`
    seeds it, in an SQLite database and a var folder of its own; returns (folder, env)."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    # The checkout's .venv (CI and scripts/dev.py make it), else the one running the tests.
    venv = ROOT / ".venv" if (ROOT / ".venv" / "bin" / "python").exists() else Path(sys.prefix)
    (checkout / ".venv").symlink_to(venv)
    (checkout / "manage.py").symlink_to(ROOT / "manage.py")
    port = str(_free_port())
    env = sqlite_shell_env(tmp_path, MARLIN_DEMO_GIT_PORT=port)
    for step in ("migrate --noinput -v 0", f"demo_setup --git-port {port}"):
        _run(f".venv/bin/python manage.py {step}", checkout, env)
    return checkout, env


def _run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{command}\nexit {done.returncode}\n{done.stderr}"
    return done


def test_the_readme_commands_run_against_the_demo_seed(demo_checkout):
    checkout, env = demo_checkout
    found = readme_commands()
    for key in RUN:
        done = _run(found[key], checkout, env)
        output = checkout / shlex.split(key)[-1]
        lines = output.read_bytes().splitlines()
        assert lines, f"{key} wrote no records"
        assert all(json.loads(line) for line in lines)
        assert f"Exported {len(lines)} line" in done.stderr
    # The demo's two judged turns: A better, then a tie, which the pairwise formats leave out.
    trl = (checkout / "trl.jsonl").read_bytes()
    assert len(trl.splitlines()) == 1
    for python in blocks({"python"}):
        _run(f".venv/bin/python -c {shlex.quote(python)}", checkout, env)

    # Seeding again changes nothing: the same export, byte for byte.
    _run(
        f".venv/bin/python manage.py demo_setup --git-port {env['MARLIN_DEMO_GIT_PORT']}",
        checkout,
        env,
    )
    _run(found[RUN[0]], checkout, env)
    assert (checkout / "trl.jsonl").read_bytes() == trl
