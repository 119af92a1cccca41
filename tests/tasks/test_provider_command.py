"""The command provider: a real agent process in a throwaway checkout of a really cloned repo.

The "agent" is a Python script written per test, run by the system python inside the real
sandbox (its folder is mounted read-only through MARLIN_SANDBOX_READ_ONLY_PATHS). It reads
the prompt on stdin, edits files, and ends its stdout with evidence (the prompt, its
environment, its working directory) after EVIDENCE_MARK: it can write nowhere else.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from repos import git_client
from repos import services as repo_services
from tasks.llm_client import generate
from tasks.providers.base import EndpointConfig, GenerationRequest, ProviderError
from tests.conftest import DEMO_FILES
from tests.factories import RepositoryFactory

PYTHON = "/usr/bin/python3"  # the system's: the venv's interpreter is not mounted
NEW_DIV = "def div(a, b):\n    if b == 0:\n        return None\n    return a / b\n"
SAFE_PY = "def safe_div(a, b):\n    return None if b == 0 else a / b\n"
EXPLANATION = "I made div return None for a zero divisor and added calc/safe.py."

EVIDENCE_MARK = "\n=== evidence ===\n"
# Runs first in every agent: record what the agent was given, printed when it exits.
AGENT_PRELUDE = """\
import atexit, json, os, pathlib, sys
EVIDENCE = {{}}
EVIDENCE["prompt"] = sys.stdin.read()
EVIDENCE["env"] = dict(os.environ)
EVIDENCE["cwd"] = os.getcwd()
EVIDENCE["readme"] = pathlib.Path("README.md").read_text()
atexit.register(lambda: print({mark!r} + json.dumps(EVIDENCE), flush=True))
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
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", {marker!r}])
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
def evidence(tmp_path: Path, settings) -> Path:
    """The agent's folder, which the sandbox mounts read-only."""
    folder = tmp_path / "agent"
    folder.mkdir()
    settings.MARLIN_SANDBOX_READ_ONLY_PATHS = [str(folder)]
    return folder


def split_answer(text: str) -> tuple[str, dict]:
    """The agent's own output, and the evidence its prelude printed last."""
    own, _, evidence = text.partition(EVIDENCE_MARK)
    return own.strip(), json.loads(evidence)


@pytest.fixture
def checkout(ready_repository) -> tuple[Path, str]:
    """The really cloned bare repository and its main commit."""
    path = repo_services.repository_cache_path(ready_repository)
    sha = git_client.resolve_commit(path, "main", allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES)
    return path, sha


def write_agent(tmp_path: Path, evidence: Path, body: str) -> Path:
    script = evidence / "agent.py"
    script.write_text(AGENT_PRELUDE.format(mark=EVIDENCE_MARK) + body)
    return script


def command_endpoint(script: Path, **parameters: object) -> EndpointConfig:
    return EndpointConfig(
        provider="command",
        name="Agent",
        model_id="agent-cli",
        parameters={"command": [PYTHON, str(script)], **parameters},
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


def assert_cleaned_up(
    checkout: tuple[Path, str], private_tmp: Path, seen: dict | None = None
) -> None:
    if seen is not None:
        agent_cwd = Path(seen["cwd"])
        assert agent_cwd.parent.name.startswith("marlin-worktree-"), agent_cwd
        assert not agent_cwd.exists()
        assert not agent_cwd.parent.exists()
    assert list(private_tmp.glob("marlin-worktree-*")) == []
    assert list(private_tmp.glob("marlin-agent-home-*")) == []
    assert worktrees(checkout[0]) == [f"worktree {checkout[0]}"]


def wait_until_gone(marker: str, seconds: float = 10) -> list[int]:
    """Host pids still alive (not zombies) whose command line holds `marker`."""
    deadline = time.monotonic() + seconds
    while True:
        alive = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if marker.encode() in cmdline and state != "Z":
                alive.append(int(entry.name))
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


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

    text, seen = split_answer(answer.text)
    assert text == EXPLANATION
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
    assert seen["readme"] == DEMO_FILES["README.md"]
    assert_cleaned_up(checkout, private_tmp, seen)


@pytest.mark.django_db
def test_the_prompt_arrives_on_stdin(checkout, tmp_path, evidence, private_tmp):
    script = write_agent(tmp_path, evidence, 'print("done")\n')
    request = make_request(checkout)

    answer = generate(endpoint=command_endpoint(script, timeout=60), request=request)

    prompt = split_answer(answer.text)[1]["prompt"]
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

    answer = generate(endpoint=config, request=make_request(checkout))

    env = split_answer(answer.text)[1]["env"]
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
    marker = f"agent-child-{uuid.uuid4().hex}"
    script = write_agent(tmp_path, evidence, HANGING_AGENT.format(marker=marker))

    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        generate(endpoint=command_endpoint(script, timeout=2), request=make_request(checkout))
    elapsed = time.monotonic() - started

    assert elapsed < 30
    assert "2 seconds" in caught.value.message
    # Pids inside the sandbox mean nothing outside: look for the marker on the host.
    assert wait_until_gone(marker) == [], "agent processes survived the time limit"
    assert wait_until_gone(str(script)) == []
    assert_cleaned_up(checkout, private_tmp)


@pytest.mark.django_db
def test_a_failing_agent_is_a_provider_error(checkout, tmp_path, evidence, private_tmp):
    script = write_agent(tmp_path, evidence, FAILING_AGENT)

    with pytest.raises(ProviderError) as caught:
        generate(endpoint=command_endpoint(script, timeout=60), request=make_request(checkout))

    assert caught.value.transient is False
    assert "exited 3" in caught.value.detail
    assert "something went wrong" in caught.value.detail
    assert "something went wrong" not in caught.value.message
    assert_cleaned_up(checkout, private_tmp)


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

    text, seen = split_answer(answer.text)
    assert seen["readme"] == readme  # the agent saw the change so far
    path, sha = checkout
    bases = settings.MARLIN_GIT_ALLOWED_BASES
    assert git_client.check_patch(path, sha, answer.diff, allowed_bases=bases) == ""
    after = files_after(checkout, answer.diff, ["README.md", "calc/safe.py"])
    assert after == {"README.md": readme, "calc/safe.py": SAFE_PY}
    assert_cleaned_up(checkout, private_tmp, seen)


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


SNOOPING_AGENT = """
import glob, socket
found = []
for path in glob.glob("/proc/*/environ") + ["/proc/%d/environ" % os.getppid()] + sys.argv[1:]:
    try:
        if os.path.isdir(path):
            found.append(path + ": " + " ".join(os.listdir(path)))
        else:
            found.append(path + ": " + open(path, "rb").read().decode(errors="replace"))
    except OSError as exc:
        found.append(path + ": " + str(exc))
for port in (5432, 6379):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3)
        found.append("CONNECTED to %d" % port)
    except OSError as exc:
        found.append("port %d: %s" % (port, exc))
pathlib.Path("calc/notes.txt").write_text("\\n".join(found))
print("\\n".join(found))
"""


@pytest.mark.django_db
def test_a_snooping_agent_finds_nothing_and_the_candidate_completes(
    checkout, tmp_path, evidence, private_tmp, monkeypatch
):
    # This test process plays the worker: its secret must reach neither the explanation
    # (which the contractor reads) nor the diff.
    monkeypatch.setenv("MARLIN_WORKER_SECRET_TOKEN", "worker-secret-9f3c")
    script = write_agent(tmp_path, evidence, SNOOPING_AGENT)
    targets = [
        str(settings.VAR_DIR),
        str(settings.MARLIN_REPO_CACHE_DIR),
        str(settings.BASE_DIR / "marlin" / "settings" / "base.py"),
        str(settings.BASE_DIR / "marlin" / "settings"),
    ]
    endpoint = command_endpoint(script, timeout=60)
    endpoint.parameters["command"] = [*endpoint.parameters["command"], *targets]

    answer = generate(endpoint=endpoint, request=make_request(checkout))

    text, _ = split_answer(answer.text)
    # The worker's environment as it started (/proc/PID/environ): DATABASE_URL is in it
    # in CI; the variable set above shows in os.environ only, which must not leak either.
    assert "DATABASE_URL" not in text and "DJANGO_SETTINGS_MODULE" not in text
    assert "worker-secret-9f3c" not in answer.text
    assert "worker-secret-9f3c" not in answer.diff
    assert "CONNECTED" not in text
    assert "SECRET_KEY" not in text
    assert "b/calc/notes.txt" in answer.diff  # it still produced its change
    assert_cleaned_up(checkout, private_tmp)


@pytest.fixture
def symlinked_checkout(db, git_server, repo_cache_dir) -> tuple[Path, str]:
    """A really cloned repository holding symlinks to /etc and out of the tree."""
    repository = RepositoryFactory(full_name="demo/links")
    git_client.create_bare_repository(
        git_server.root / "demo" / "links.git",
        DEMO_FILES,
        message="Links",
        symlinks={"etc": "/etc", "calc/up": "../../..", "docs/readme": "../README.md"},
    )
    repository.clone_url = f"{git_server.base_url}/demo/links.git"
    repository.save()
    repository.queue_clone()
    repo_services.repository_clone(repository_id=repository.pk)
    repository.refresh_from_db()
    assert repository.is_ready, repository.clone_error
    path = repo_services.repository_cache_path(repository)
    return path, git_client.resolve_commit(
        path, "main", allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES
    )


LINK_AGENT = """
links = {{name: os.readlink(name) for name in ("etc", "calc/up", "docs/readme")}}
for name in ("etc/evil", "calc/up/evil"):
    try:
        open(name, "w").write("x")
        print("WROTE", name)
    except OSError:
        pass
pathlib.Path("calc/safe.py").write_text({safe_py!r})
print(json.dumps(links))
"""


@pytest.mark.django_db
def test_a_repository_with_escaping_symlinks_generates_normally(
    symlinked_checkout, tmp_path, evidence, private_tmp
):
    script = write_agent(tmp_path, evidence, LINK_AGENT.format(safe_py=SAFE_PY))

    answer = generate(
        endpoint=command_endpoint(script, timeout=60), request=make_request(symlinked_checkout)
    )

    text, _ = split_answer(answer.text)
    # The links stayed links inside the sandbox, and none could be written through.
    assert json.loads(text) == {"etc": "/etc", "calc/up": "../../..", "docs/readme": "../README.md"}
    assert "WROTE" not in text
    assert "+++ b/calc/safe.py" in answer.diff
    assert "etc" not in answer.diff.replace("calc/safe.py", "")
    path, sha = symlinked_checkout
    bases = settings.MARLIN_GIT_ALLOWED_BASES
    assert git_client.check_patch(path, sha, answer.diff, allowed_bases=bases) == ""
    assert_cleaned_up(symlinked_checkout, private_tmp)
