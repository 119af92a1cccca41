"""Clones are bounded in time and size by our own code, and git never sees our secrets."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from repos import git_client
from tests.repos.helpers import build_bare_repository


@pytest.fixture
def silent_server():
    """A TCP server on the loopback that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_clone_that_hangs_is_killed_at_the_time_limit_and_cleaned_up(silent_server, tmp_path):
    dest = tmp_path / "cache" / "slow" / "repo.git"
    started = time.monotonic()
    with pytest.raises(git_client.GitError, match="took longer than 2 s"):
        git_client.clone_or_fetch(
            f"{silent_server}/slow/repo.git", dest, allowed_bases=[silent_server],
            timeout=2, max_bytes=10**9, blob_limit=10**6,
        )  # fmt: skip
    assert time.monotonic() - started < 10
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == [Path(str(dest) + ".lock")]


def test_a_clone_over_the_size_limit_is_killed_and_cleaned_up(git_server, tmp_path):
    # Eight 400 KiB random files: each under the blob limit, so the clone does fetch them.
    files = {f"data/{n}.bin": os.urandom(400 * 1024) for n in range(8)}
    build_bare_repository(git_server.root / "fat" / "repo.git", files)
    dest = tmp_path / "cache" / "fat" / "repo.git"
    with pytest.raises(git_client.GitError, match="larger than 1 MiB"):
        git_client.clone_or_fetch(
            f"{git_server.base_url}/fat/repo.git", dest, allowed_bases=[git_server.base_url],
            timeout=60, max_bytes=1024 * 1024, blob_limit=1024 * 1024,
        )  # fmt: skip
    assert not dest.exists()
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".clone-")]


def test_a_missing_repository_fails_fast_without_a_prompt(git_server, tmp_path):
    started = time.monotonic()
    with pytest.raises(git_client.GitError, match="git clone failed"):
        git_client.clone_or_fetch(
            f"{git_server.base_url}/nobody/nothing.git", tmp_path / "x" / "y.git",
            allowed_bases=[git_server.base_url], timeout=30, max_bytes=10**9, blob_limit=10**6,
        )  # fmt: skip
    assert time.monotonic() - started < 10


def test_git_never_sees_secret_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-very-secret")
    monkeypatch.setenv("DATABASE_URL", "postgres://user:pw@db/marlin")
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-123")
    # An alias starting with "!" runs a shell command in git's environment: print it.
    output = git_client._run(
        ["-c", "alias.showenv=!env", "showenv"], cwd=tmp_path, env=git_client._git_env([]),
        timeout=10,
    )  # fmt: skip
    assert "GIT_TERMINAL_PROMPT=0" in output  # the hardened environment did reach git
    for secret in ("sk-ant-very-secret", "user:pw@db", "tok-123"):
        assert secret not in output


def test_a_redirect_to_another_host_is_not_followed(tmp_path, git_server):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    # A real repository at the redirect's target: following the redirect would succeed.
    build_bare_repository(git_server.root / "redir" / "target.git", {"a.txt": "a\n"})
    hits: list[str] = []

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            hits.append(self.path)
            self.send_response(302)
            suffix = self.path.split("/b.git", 1)[1]
            self.send_header("Location", f"{git_server.base_url}/redir/target.git{suffix}")
            self.end_headers()

        def log_message(self, *args) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(git_client.GitError, match="git clone failed"):
            git_client.clone_or_fetch(
                f"{base}/a/b.git", tmp_path / "c" / "b.git", allowed_bases=[base],
                timeout=20, max_bytes=10**9, blob_limit=10**6,
            )  # fmt: skip
    finally:
        server.shutdown()
        thread.join()
    assert hits  # git did ask, and got only the redirect
    assert not (tmp_path / "c" / "b.git").exists()
