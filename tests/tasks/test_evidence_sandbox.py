"""tasks/evidence_sandbox.py: the setup's cache, its network, its disk, and what it leaves.

Real bubblewrap throughout; one test installs a small package from the package index, as a
recipe's setup does.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
from django.conf import settings

from tasks import evidence
from tasks.evidence_sandbox import (
    DISK_EXCEEDED,
    FAILED,
    PASSED,
    READY_MARK,
    prepare_environment,
    run_command,
    setup_key,
)

SHA = "a" * 40
CONNECT = (
    "import socket, sys\n"
    "socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)\n"
    "print('CONNECTED')\n"
)


@pytest.fixture
def evidence_dir(settings, tmp_path):
    settings.MARLIN_EVIDENCE_DIR = tmp_path / "evidence"
    return settings.MARLIN_EVIDENCE_DIR


@pytest.fixture
def tree(tmp_path, evidence_dir) -> Path:
    root = tmp_path / "tree"
    (root / "calc").mkdir(parents=True)
    (root / "calc" / "__init__.py").write_text("")
    (root / "calc" / "ops.py").write_text("def add(a, b):\n    return a + b\n")
    return root


def _key(recipe: str = "recipe-1", *, repository_id: int = 1, commit_sha: str = SHA) -> str:
    return setup_key(repository_id=repository_id, commit_sha=commit_sha, recipe_digest=recipe)


def _prepare(tree: Path, commands: list[list[str]], *, key: str | None = None, timeout=60):
    return prepare_environment(key=key or _key(), setup_commands=commands, timeout=timeout,
                               source=tree)  # fmt: skip


# --- The cache -----------------------------------------------------------------------


def test_a_second_setup_with_the_same_key_is_cached_and_fast(tree):
    commands = [["bash", "-c", "sleep 1 && cp -R calc {env}/built"]]

    first = _prepare(tree, commands)
    started = time.monotonic()
    second = _prepare(tree, commands)
    seconds = time.monotonic() - started

    assert first.ok and not first.cached and first.duration_ms >= 1000
    assert (first.path / "built" / "ops.py").is_file()
    assert second.ok and second.cached and second.path == first.path
    assert seconds < 0.5
    assert second.commands == first.commands


def test_another_recipe_commit_or_repository_is_another_environment(tree):
    keys = {_key("recipe-1"), _key("recipe-2"), _key(commit_sha="b" * 40),
            _key(repository_id=2)}  # fmt: skip
    assert len(keys) == 4

    first = _prepare(tree, [["bash", "-c", "echo one > {env}/which"]], key=_key("recipe-1"))
    other = _prepare(tree, [["bash", "-c", "echo two > {env}/which"]], key=_key("recipe-2"))

    assert not other.cached and other.path != first.path
    assert (first.path / "which").read_text() == "one\n"
    assert (other.path / "which").read_text() == "two\n"


def test_a_failed_setup_is_remembered_for_a_while_then_tried_again(tree, settings):
    settings.MARLIN_EVIDENCE_SETUP_RETRY_SECONDS = 600
    failing = [["bash", "-c", "echo broken dependency >&2; exit 3"]]
    working = [["bash", "-c", "echo ok > {env}/ok"]]

    first = _prepare(tree, failing)
    # Within the retry window even a setup that would work now is not run again: every job
    # of the commit gets the remembered failure instead of a build each.
    remembered = _prepare(tree, working)
    settings.MARLIN_EVIDENCE_SETUP_RETRY_SECONDS = 0
    retried = _prepare(tree, working)

    assert not first.ok and not first.cached
    assert first.reason == "Setup command 1 failed (exit status 3)."
    assert "broken dependency" in first.log
    assert not remembered.ok and remembered.cached and remembered.reason == first.reason
    assert retried.ok and not retried.cached
    assert (retried.path / "ok").read_text() == "ok\n"


def test_a_setup_that_runs_too_long_fails_with_its_reason(tree):
    outcome = _prepare(tree, [["sleep", "30"]], timeout=3)

    assert not outcome.ok
    assert outcome.reason == "Setup command 1 did not finish in time."
    assert outcome.duration_ms < 15_000


# --- What setup leaves on the host ---------------------------------------------------


def test_setup_cannot_make_the_worker_write_through_a_symlink(tree, tmp_path):
    # The worker (root) writes the ready mark into the folder setup wrote: a link left
    # there by that name must not send the write to a host file.
    victim = tmp_path / "marlin-settings.py"
    victim.write_text("SECRET_KEY = 'host'\n")

    outcome = _prepare(tree, [["ln", "-s", str(victim), f"{evidence.ENV}/{READY_MARK}"]])

    assert outcome.ok
    assert victim.read_text() == "SECRET_KEY = 'host'\n"
    mark = outcome.path / READY_MARK
    assert not mark.is_symlink() and json.loads(mark.read_text())["commands"]
    assert outcome.path.stat().st_uid == os.geteuid()  # handed back to the worker


def test_a_setup_filling_the_host_disk_is_stopped_while_it_writes(tree, settings):
    settings.MARLIN_EVIDENCE_ENV_MAX_MB = 16
    # 4 MB at a time towards 10 GB, each file under the per-file limit.
    line = "for i in $(seq 2560); do head -c 4M /dev/zero > {env}/f$i; sleep 0.01; done"

    started = time.monotonic()
    outcome = _prepare(tree, [["bash", "-c", line]], timeout=120)
    seconds = time.monotonic() - started

    assert not outcome.ok
    assert outcome.reason == "Setup command 1 wrote more than 16 MB and was stopped."
    assert outcome.commands[0]["status"] == DISK_EXCEEDED
    assert seconds < 20
    # Nothing of it is kept on the host.
    environments = Path(settings.MARLIN_EVIDENCE_DIR) / "environments"
    assert [p for p in environments.iterdir() if p.is_dir()] == []


# --- Network: setup only, when asked -------------------------------------------------


def test_setup_installs_from_the_package_index_and_checks_use_it_read_only_offline(tree):
    commands = [
        ["python3", "-m", "venv", "{env}/venv"],
        ["{env}/venv/bin/pip", "install", "-q", "iniconfig"],
    ]

    outcome = _prepare(tree, commands, timeout=300)

    assert outcome.ok, (outcome.reason, outcome.log)
    assert [c["status"] for c in outcome.commands] == [PASSED, PASSED]
    assert outcome.path.stat().st_uid == os.geteuid()

    def check(line: str):
        return run_command(["bash", "-c", line], source=tree, env_dir=outcome.path, timeout=60)

    uses = check("python -c 'import iniconfig, calc.ops; print(iniconfig.__file__)'")
    assert uses.status == PASSED, uses.log
    assert uses.output.startswith(f"{evidence.ENV}/venv/")
    # A check has no network and cannot change the shared environment.
    installs = check("pip install --no-cache-dir -q --timeout 5 --retries 0 pluggy")
    assert installs.status == FAILED
    writes = check(f"touch {evidence.ENV}/venv/changed")
    assert writes.status == FAILED and "Read-only file system" in writes.log
    assert not (outcome.path / "venv" / "changed").exists()
    reaches = check(f'python -c "{CONNECT}" pypi.org 443')
    assert reaches.status == FAILED and "CONNECTED" not in reaches.output


FETCH = (
    "import sys, urllib.request\n"
    "try:\n"
    "    print('FETCHED', urllib.request.urlopen(sys.argv[1], timeout=20).status)\n"
    "except OSError as exc:\n"
    "    print('REFUSED', exc)\n"
)


def test_setup_reaches_the_package_index_through_the_proxy_and_nothing_else(tree):
    def run(argv, network: bool):
        return run_command(argv, source=tree, env_dir=None, network=network, timeout=60)

    # Checks: no network at all.
    offline = run(["python3", "-c", FETCH, "https://pypi.org/simple/iniconfig/"], False)
    assert "FETCHED" not in offline.output and "REFUSED" in offline.output
    # Setup: the index over HTTPS through the egress proxy ...
    online = run(["python3", "-c", FETCH, "https://pypi.org/simple/iniconfig/"], True)
    assert "FETCHED 200" in online.output, online.log
    # ... but never a direct connection, the loopback's services or another host.
    direct = run(["python3", "-c", CONNECT, "pypi.org", "443"], True)
    assert direct.status == FAILED and "CONNECTED" not in direct.output
    for target in ("127.0.0.1", "localhost"):
        loopback = run(["python3", "-c", CONNECT, target, "5432"], True)
        assert loopback.status == FAILED and "CONNECTED" not in loopback.output
    other = run(["python3", "-c", FETCH, "https://example.com/"], True)
    assert "REFUSED" in other.output and "403" in other.output


def test_setup_reaches_the_index_whichever_uid_of_the_pool_it_runs_under(tree):
    # Another sandbox holds the first uid of the pool: this one runs under the next.
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    holder.bind(f"\0marlin-sandbox-uid-{settings.MARLIN_SANDBOX_UID}")
    try:
        online = run_command(
            ["python3", "-c", FETCH, "https://pypi.org/simple/iniconfig/"], source=tree,
            env_dir=None, network=True, timeout=60,
        )  # fmt: skip
    finally:
        holder.close()
    assert "FETCHED 200" in online.output, online.log
