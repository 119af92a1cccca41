"""The command provider: a real agent process in a throwaway checkout of a really cloned repo.

The "agent" is a Python script written per test. It reads the prompt on stdin, edits files,
and leaves evidence (the prompt, its environment, its working directory, pids) in a folder
outside the checkout, so the tests can see what the agent saw.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.conf import settings

from repos import git_client
from repos import services as repo_services
from tasks.llm_client import EndpointConfig, GenerationRequest, ProviderError, generate
from tests.conftest import DEMO_FILES

NEW_DIV = "def div(a, b):\n    if b == 0:\n        return None\n    return a / b\n"
SAFE_PY = "def safe_div(a, b):\n    return None if b == 0 else a / b\n"
EXPLANATION = "I made div return None for a zero divisor and added calc/safe.py."

# Runs first in every agent: record what the agent was given.
AGENT_PRELUDE = """\
import json, os, pathlib, sys
EVIDENCE = pathlib.Path({evidence!r})
prompt = sys.stdin.read()
(EVIDENCE / "prompt.txt").write_text(prompt)
(EVIDENCE / "env.json").write_text(json.dumps(dict(os.environ)))
(EVIDENCE / "cwd.txt").write_text(os.getcwd())
(EVIDENCE / "readme.txt").write_text(pathlib.Path("README.md").read_text())
"""

EDITING_AGENT = """\
ops = pathlib.Path("calc/ops.py")
text = ops.read_text()
ops.write_text(text.replace("def div(a, b):\\n    return a / b\\n", {new_div!r}))
pathlib.Path("calc/safe.py").write_text({safe_py!r})
print({explanation!r})
"""

HANGING_AGENT = """\
import subprocess, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
(EVIDENCE / "pids.json").write_text(json.dumps({"agent": os.getpid(), "child": child.pid}))
print("thinking...", flush=True)
time.sleep(60)
"""

FAILING_AGENT = """\
pathlib.Path("calc/ops.py").write_text("broken\\n")
print("something went wrong", file=sys.stderr)
sys.exit(3)
"""


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tempfile's folder for this test alone, so whatever is left behind is this test's."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    folder = tmp_path / "evidence"
    folder.mkdir()
    return folder


@pytest.fixture
def checkout(ready_repository) -> tuple[Path, str]:
    """The really cloned bare repository and its main commit."""
    path = repo_services.repository_cache_path(ready_repository)
    sha = git_client.resolve_commit(path, "main", allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES)
    return path, sha


def write_agent(tmp_path: Path, evidence: Path, body: str) -> Path:
    script = tmp_path / "agent.py"
    script.write_text(
        "#!" + sys.executable + "\n" + AGENT_PRELUDE.format(evidence=str(evidence)) + body
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def command_endpoint(script: Path, **parameters: object) -> EndpointConfig:
    return EndpointConfig(
        provider="command",
        name="Agent",
        model_id="agent-cli",
        parameters={"command": [sys.executable, str(script)], **parameters},
    )


def make_request(checkout: tuple[Path, str], *, base_diff: str = "") -> GenerationRequest:
    path, sha = checkout
    return GenerationRequest(
        system="SYSTEM: you are an agent working in a checkout.",
        messages=[{"role": "user", "content": "Make div safe for a zero divisor."}],
        repo_path=path,
        commit_sha=sha,
        base_diff=base_diff,
    )


def files_after(checkout: tuple[Path, str], diff: str, paths: list[str]) -> dict[str, str | None]:
    """The given files' text after applying `diff` to a fresh checkout of the commit."""
    path, sha = checkout
    bases = settings.MARLIN_GIT_ALLOWED_BASES
    with git_client.temporary_worktree(path, sha, allowed_bases=bases) as worktree:
        git_client.apply_to_worktree(worktree, diff)
        return {
            rel: (worktree / rel).read_text() if (worktree / rel).exists() else None
            for rel in paths
        }


def worktrees(bare: Path) -> list[str]:
    listing = subprocess.run(
        ["git", "worktree", "list", "--porcelain"],
        cwd=bare, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return [line for line in listing.splitlines() if line.startswith("worktree ")]


def assert_cleaned_up(checkout: tuple[Path, str], private_tmp: Path, evidence: Path) -> None:
    agent_cwd = Path((evidence / "cwd.txt").read_text())
    assert agent_cwd.parent.name.startswith("marlin-worktree-"), agent_cwd
    assert not agent_cwd.exists()
    assert not agent_cwd.parent.exists()
    assert list(private_tmp.glob("marlin-worktree-*")) == []
    assert list(private_tmp.glob("marlin-agent-home-*")) == []
    assert worktrees(checkout[0]) == [f"worktree {checkout[0]}"]


def is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A killed process whose parent died is a zombie until init reaps it: dead all the same.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


@pytest.mark.django_db
def test_the_agents_edits_become_the_diff_and_its_stdout_the_text(
    checkout, tmp_path, evidence, private_tmp
):
    script = write_agent(
        tmp_path,
        evidence,
        EDITING_AGENT.format(new_div=NEW_DIV, safe_py=SAFE_PY, explanation=EXPLANATION),
    )

    answer = generate(endpoint=command_endpoint(script, timeout=60), request=make_request(checkout))

    assert answer.text.strip() == EXPLANATION
    assert answer.diff
    assert "+++ b/calc/ops.py" in answer.diff
    assert "+++ b/calc/safe.py" in answer.diff
    path, sha = checkout
    bases = settings.MARLIN_GIT_ALLOWED_BASES
    assert git_client.check_patch(path, sha, answer.diff, allowed_bases=bases) == ""
    after = files_after(checkout, answer.diff, ["calc/ops.py", "calc/safe.py", "README.md"])
    assert after["calc/ops.py"] == DEMO_FILES["calc/ops.py"].replace(
        "def div(a, b):\n    return a / b\n", NEW_DIV
    )
    assert after["calc/safe.py"] == SAFE_PY
    assert after["README.md"] == DEMO_FILES["README.md"]  # untouched files stay out of it
    # The agent started in a checkout of the pinned commit.
    assert (evidence / "readme.txt").read_text() == DEMO_FILES["README.md"]
    assert_cleaned_up(checkout, private_tmp, evidence)


@pytest.mark.django_db
def test_the_prompt_arrives_on_stdin(checkout, tmp_path, evidence, private_tmp):
    script = write_agent(tmp_path, evidence, 'print("done")\n')
    request = make_request(checkout)

    generate(endpoint=command_endpoint(script, timeout=60), request=request)

    prompt = (evidence / "prompt.txt").read_text()
    assert request.system in prompt
    assert "Make div safe for a zero divisor." in prompt
    assert prompt.index(request.system) < prompt.index("Make div safe")


@pytest.mark.django_db
def test_the_agent_sees_only_the_environment_it_is_given(
    checkout, tmp_path, evidence, private_tmp, monkeypatch
):
    monkeypatch.setenv("MY_SECRET_TOKEN", "do-not-leak")
    monkeypatch.setenv("PLAIN_WORKER_SETTING", "also-private")
    monkeypatch.setenv("AGENT_CONFIG", "visible")
    monkeypatch.setenv("AGENT_API_KEY", "key-for-the-agent")
    script = write_agent(tmp_path, evidence, 'print("done")\n')
    config = command_endpoint(script, timeout=60, pass_env=["AGENT_CONFIG", "NOT_SET_ANYWHERE"])
    config = dataclasses.replace(config, api_key_env="AGENT_API_KEY")

    generate(endpoint=config, request=make_request(checkout))

    env = json.loads((evidence / "env.json").read_text())
    assert "MY_SECRET_TOKEN" not in env
    assert "do-not-leak" not in env.values()
    assert "PLAIN_WORKER_SETTING" not in env
    for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"):
        assert name not in env
    assert env["AGENT_CONFIG"] == "visible"
    assert "NOT_SET_ANYWHERE" not in env
    assert env["AGENT_API_KEY"] == "key-for-the-agent"
    assert env["HOME"] != os.environ.get("HOME")


@pytest.mark.django_db
def test_a_hanging_agent_is_killed_with_everything_it_started(
    checkout, tmp_path, evidence, private_tmp
):
    script = write_agent(tmp_path, evidence, HANGING_AGENT)

    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        generate(endpoint=command_endpoint(script, timeout=2), request=make_request(checkout))
    elapsed = time.monotonic() - started

    assert elapsed < 30
    assert "2 seconds" in caught.value.message
    pids = json.loads((evidence / "pids.json").read_text())
    deadline = time.monotonic() + 10
    while not (is_gone(pids["agent"]) and is_gone(pids["child"])):
        if time.monotonic() > deadline:
            for pid in pids.values():  # never leave them behind, whatever the outcome
                if not is_gone(pid):
                    os.kill(pid, signal.SIGKILL)
            pytest.fail(f"agent processes survived the time limit: {pids}")
        time.sleep(0.1)
    assert_cleaned_up(checkout, private_tmp, evidence)


@pytest.mark.django_db
def test_a_failing_agent_is_a_provider_error(checkout, tmp_path, evidence, private_tmp):
    script = write_agent(tmp_path, evidence, FAILING_AGENT)

    with pytest.raises(ProviderError) as caught:
        generate(endpoint=command_endpoint(script, timeout=60), request=make_request(checkout))

    assert caught.value.transient is False
    assert "exited 3" in caught.value.detail
    assert "something went wrong" in caught.value.detail
    assert "something went wrong" not in caught.value.message
    assert_cleaned_up(checkout, private_tmp, evidence)


@pytest.mark.django_db
def test_the_base_diff_is_applied_before_the_agent_runs(checkout, tmp_path, evidence, private_tmp):
    readme = DEMO_FILES["README.md"] + "\nDivision by zero returns None.\n"
    base_diff = (
        "--- a/README.md\n"
        "+++ b/README.md\n"
        "@@ -1,3 +1,5 @@\n"
        " # calc\n"
        " \n"
        " A tiny calculator.\n"
        "+\n"
        "+Division by zero returns None.\n"
    )
    script = write_agent(
        tmp_path,
        evidence,
        EDITING_AGENT.format(new_div=NEW_DIV, safe_py=SAFE_PY, explanation=EXPLANATION),
    )

    answer = generate(
        endpoint=command_endpoint(script, timeout=60),
        request=make_request(checkout, base_diff=base_diff),
    )

    assert (evidence / "readme.txt").read_text() == readme  # the agent saw the change so far
    path, sha = checkout
    bases = settings.MARLIN_GIT_ALLOWED_BASES
    assert git_client.check_patch(path, sha, answer.diff, allowed_bases=bases) == ""
    after = files_after(checkout, answer.diff, ["README.md", "calc/safe.py"])
    assert after == {"README.md": readme, "calc/safe.py": SAFE_PY}
    assert_cleaned_up(checkout, private_tmp, evidence)


@pytest.mark.django_db
def test_a_command_that_is_not_an_argument_list_is_refused(checkout, tmp_path):
    config = EndpointConfig(
        provider="command",
        name="Agent",
        model_id="agent-cli",
        parameters={"command": f"{sys.executable} -c 'print(1)'"},
    )

    with pytest.raises(ProviderError) as caught:
        generate(endpoint=config, request=make_request(checkout))

    assert caught.value.transient is False
    assert "parameters.command" in caught.value.detail


TAMPERING_AGENT = """
import subprocess
# Try to move the shared clone's branch and remote through whatever repository we sit in.
subprocess.run(["git", "branch", "-f", "main", "HEAD"], check=False)
subprocess.run(["git", "config", "remote.origin.url", "https://evil.example/x.git"], check=False)
subprocess.run(["git", "tag", "planted"], check=False)
with open("calc/ops.py", "a") as f:
    f.write("# touched\\n")
print("done")
"""


def test_the_agent_cannot_reach_the_shared_clone(checkout, tmp_path, evidence, private_tmp):
    import subprocess

    bare, sha = checkout
    before = subprocess.run(
        ["git", "-C", str(bare), "for-each-ref"], capture_output=True, text=True, check=True
    ).stdout
    config_before = (bare / "config").read_text()
    script = write_agent(tmp_path, evidence, TAMPERING_AGENT)
    answer = generate(endpoint=command_endpoint(script, timeout=60), request=make_request(checkout))
    assert "+# touched" in answer.diff
    after = subprocess.run(
        ["git", "-C", str(bare), "for-each-ref"], capture_output=True, text=True, check=True
    ).stdout
    assert after == before  # no branch moved, no tag planted in the shared clone
    assert (bare / "config").read_text() == config_before
