from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from marlin.devtools.git_http_server import GitHttpServer

IDENTITY = ["-c", "user.name=t", "-c", "user.email=t@example.com"]


def git_env() -> dict[str, str]:
    env = os.environ.copy()
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_TERMINAL_PROMPT="0",
    )
    return env


def git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=git_env(),
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


def commit_file(work: Path, name: str, content: str, message: str) -> None:
    (work / name).write_text(content)
    git("add", name, cwd=work)
    git(*IDENTITY, "commit", "-q", "-m", message, cwd=work)


@pytest.fixture
def work_repo(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    git("init", "-q", "-b", "main", str(work))
    # An earlier version of README that HEAD no longer uses: its blob must stay on the server
    # in a blob:none clone, which proves the filter was honoured.
    commit_file(work, "README.md", "old readme\n", "first")
    (work / "src").mkdir()
    (work / "src" / "app.py").write_text("print('hello')\n")
    git("add", "src/app.py", cwd=work)
    commit_file(work, "README.md", "# Demo\n", "second")
    return work


@pytest.fixture
def root(tmp_path: Path, work_repo: Path) -> Path:
    root = tmp_path / "root"
    (root / "acme").mkdir(parents=True)
    git("clone", "-q", "--bare", str(work_repo), str(root / "acme" / "demo.git"))
    return root


@pytest.fixture
def server(root: Path) -> Iterator[GitHttpServer]:
    with GitHttpServer(root) as srv:
        yield srv


def test_it_serves_a_partial_clone(server: GitHttpServer, tmp_path: Path) -> None:
    clone = tmp_path / "clone"

    result = git("clone", "--filter=blob:none", f"{server.base_url}/acme/demo.git", str(clone))

    assert "filtering not recognized" not in result.stderr
    assert (clone / "README.md").read_text() == "# Demo\n"
    assert (clone / "src" / "app.py").read_text() == "print('hello')\n"
    assert git("config", "remote.origin.partialclonefilter", cwd=clone).stdout.strip() == (
        "blob:none"
    )
    objects = git("rev-list", "--objects", "--all", "--missing=print", cwd=clone).stdout
    assert any(line.startswith("?") for line in objects.splitlines())


def test_it_serves_new_commits_to_a_fetch(
    server: GitHttpServer, root: Path, work_repo: Path, tmp_path: Path
) -> None:
    clone = tmp_path / "clone"
    git("clone", "-q", "--filter=blob:none", f"{server.base_url}/acme/demo.git", str(clone))
    commit_file(work_repo, "CHANGELOG.md", "v2\n", "third")
    new_head = git("rev-parse", "HEAD", cwd=work_repo).stdout.strip()
    git("push", "-q", str(root / "acme" / "demo.git"), "main", cwd=work_repo)

    git("fetch", "-q", "origin", cwd=clone)

    assert git("rev-parse", "origin/main", cwd=clone).stdout.strip() == new_head
    shown = git("show", "origin/main:CHANGELOG.md", cwd=clone).stdout
    assert shown == "v2\n"


def test_it_fails_a_clone_of_a_missing_repo_quickly(server: GitHttpServer, tmp_path: Path) -> None:
    started = time.monotonic()

    result = git("clone", f"{server.base_url}/acme/nope.git", str(tmp_path / "nope"), check=False)

    assert result.returncode != 0
    assert time.monotonic() - started < 10
    assert not (tmp_path / "nope").exists()


def test_stop_closes_the_port(root: Path) -> None:
    srv = GitHttpServer(root)
    srv.start()
    port = int(srv.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass

    srv.stop()

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
