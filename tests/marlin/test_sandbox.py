"""marlin.sandbox: what untrusted code run through it can see, reach and leave behind.

Every test runs the real bubblewrap; the "worker" is this test process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from marlin import reaping, sandbox
from repos import git_client

PYTHON = "/usr/bin/python3"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def processes_with(marker: str) -> list[int]:
    """Host pids whose command line holds `marker` (zombies excluded: they are dead)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if marker.encode() in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def wait_until_gone(marker: str, seconds: float = 10) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_the_worker_environment_is_invisible_in_proc(workdir):
    # /proc/PID/environ shows a process's environment as it started, so the "worker" is a
    # child process started with the secret, which runs the sandbox itself.
    agent = (
        "import glob\n"
        "found = []\n"
        "for path in glob.glob('/proc/*/environ') + ['/proc/1/environ']:\n"
        "    try:\n"
        "        found.append(open(path, 'rb').read().decode(errors='replace'))\n"
        "    except OSError:\n"
        "        pass\n"
        "print(len(glob.glob('/proc/[0-9]*')), 'processes')\n"
        "print('\\n'.join(found))\n"
    )
    worker = (
        "import sys\n"
        "from pathlib import Path\n"
        "from marlin import sandbox\n"
        "result = sandbox.run(sys.argv[1:], workdir=Path.cwd(), timeout=30)\n"
        "sys.stdout.buffer.write(result.stdout)\n"
        "sys.exit(result.returncode)\n"
    )
    env = {**os.environ, "MARLIN_WORKER_SECRET": "worker-secret-4711"}
    env.setdefault("DJANGO_SETTINGS_MODULE", "marlin.settings.test")

    done = subprocess.run(
        [sys.executable, "-c", worker, PYTHON, "-c", agent],
        cwd=workdir, env=env, capture_output=True, timeout=60,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert b"worker-secret-4711" not in done.stdout
    # A new PID namespace: the sandbox sees its own few processes, not the host's.
    assert int(done.stdout.split()[0]) < 10


def test_marlins_directories_and_secret_files_are_not_mounted(workdir, tmp_path, monkeypatch):
    secret_file = Path("/etc") / "hostname"  # any file under a bound tree stands in
    sibling = tmp_path / "next-to-the-workdir"
    sibling.mkdir()
    (sibling / "private.txt").write_text("worker files")
    monkeypatch.setenv("SOME_SECRET_FILE", str(secret_file))
    paths = [settings.BASE_DIR, settings.VAR_DIR, settings.MARLIN_REPO_CACHE_DIR,
             Path(settings.BASE_DIR) / "marlin" / "settings" / "base.py", sibling]  # fmt: skip
    script = (
        "import os, sys\n"
        "for path in sys.argv[1:]:\n"
        "    ok = os.path.exists(path) and (os.path.isfile(path) and os.path.getsize(path)"
        " or os.path.isdir(path) and os.listdir(path))\n"
        "    print(path, 'VISIBLE' if ok else 'hidden')\n"
    )

    result = sandbox.run(
        [PYTHON, "-c", script, *map(str, paths), str(secret_file)], workdir=workdir, timeout=30
    )

    assert result.returncode == 0, result.stderr
    assert b"VISIBLE" not in result.stdout, result.stdout.decode()


@pytest.mark.parametrize("port", [5432, 6379])
def test_loopback_services_are_unreachable_without_network(workdir, port):
    script = (
        "import socket, sys\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
        "    print('CONNECTED')\n"
        "except OSError as exc:\n"
        "    print('refused', exc)\n"
    )

    result = sandbox.run([PYTHON, "-c", script], workdir=workdir, timeout=30)

    assert result.returncode == 0, result.stderr
    assert b"refused" in result.stdout


def test_the_workdir_is_the_only_writable_place(workdir):
    script = (
        "import os\n"
        "open('made-here.txt', 'w').write('ok')\n"
        "for path in ['/usr/evil', '/etc/evil', os.path.dirname(os.getcwd()) + '/evil']:\n"
        "    try:\n"
        "        open(path, 'w').write('x'); print('WROTE', path)\n"
        "    except OSError:\n"
        "        pass\n"
    )

    result = sandbox.run([PYTHON, "-c", script], workdir=workdir, timeout=30)

    assert result.returncode == 0, result.stderr
    assert b"WROTE" not in result.stdout
    assert (workdir / "made-here.txt").read_text() == "ok"
    assert not (workdir.parent / "evil").exists()
    # Handed back to the worker afterwards, so its git may read the checkout.
    assert (workdir / "made-here.txt").stat().st_uid == os.geteuid()


def test_a_fork_bomb_is_contained_and_killed(workdir):
    marker = f"forkbomb-{uuid.uuid4().hex}"
    script = (
        "import os, time\n"
        "for _ in range(10000):\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(1000)\n"
        "            os._exit(0)\n"
        "    except OSError:\n"
        "        pass\n"
        "time.sleep(1000)\n"
    )

    started = time.monotonic()
    result = sandbox.run([PYTHON, "-c", script, marker], workdir=workdir, timeout=5)

    assert result.timed_out
    assert time.monotonic() - started < 30
    assert wait_until_gone(marker) == []


def test_a_sleeper_is_killed_at_the_timeout_with_its_children(workdir):
    marker = f"sleeper-{uuid.uuid4().hex}"
    script = "import subprocess, sys, time\nsubprocess.Popen(['sleep', '1000'])\ntime.sleep(1000)\n"

    started = time.monotonic()
    result = sandbox.run([PYTHON, "-c", script, marker], workdir=workdir, timeout=2)

    assert result.timed_out and result.returncode is None
    assert time.monotonic() - started < 15
    assert wait_until_gone(marker) == []


def test_output_beyond_the_limit_stops_the_command(workdir):
    script = "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n"

    result = sandbox.run(
        [PYTHON, "-c", script], workdir=workdir, timeout=30, max_output_bytes=100_000
    )

    assert result.output_exceeded
    assert len(result.stdout) == 100_000


def test_stdin_env_and_exit_status_pass_through(workdir):
    script = "import os, sys\nprint(sys.stdin.read(), os.environ['GIVEN'], sorted(os.environ))\nsys.exit(3)"

    result = sandbox.run(
        [PYTHON, "-c", script], workdir=workdir, stdin=b"prompt", env={"GIVEN": "yes"}, timeout=30
    )

    assert result.returncode == 3
    assert result.stdout.startswith(b"prompt yes")
    assert b"DATABASE_URL" not in result.stdout


def test_without_bubblewrap_nothing_runs(workdir, settings):
    settings.MARLIN_SANDBOX_BWRAP = "/nonexistent/bwrap"

    with pytest.raises(sandbox.SandboxUnavailable, match="bubblewrap .* is not installed"):
        sandbox.run(["touch", "ran"], workdir=workdir, timeout=30)

    assert not (workdir / "ran").exists()


def test_the_reaper_removes_stale_worktrees_only(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    stale = tmp_path / f"{git_client.WORKTREE_PREFIX}old"
    (stale / "checkout").mkdir(parents=True)
    (stale / "checkout" / "etc").symlink_to("/etc")  # removed, never followed
    old = time.time() - 10_000
    os.utime(stale, (old, old))
    fresh = tmp_path / f"{git_client.WORKTREE_PREFIX}new"
    fresh.mkdir()

    assert reaping.remove_stale_worktrees(older_than_seconds=3600) == 1

    assert not stale.exists() and fresh.exists()
    assert Path("/etc/hostname").exists()


def test_the_sandbox_cannot_read_its_own_mounts_or_environment_from_its_init(workdir):
    # bwrap's options (host paths, environment values) go through --args, not argv.
    secret = f"value-{uuid.uuid4().hex}"
    script = "import pathlib; print(pathlib.Path('/proc/1/cmdline').read_bytes())"
    result = sandbox.run(
        [PYTHON, "-c", script], workdir=workdir, env={"AGENT_TOKEN": secret}, timeout=30
    )
    assert result.returncode == 0, result.stderr
    seen = result.stdout.decode()
    assert "bwrap" in seen and "--args" in seen
    assert secret not in seen and str(workdir) not in seen and "--ro-bind" not in seen
