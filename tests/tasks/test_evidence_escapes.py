"""Escape attempts from inside an evidence check: each fails that check and nothing else.

Every attempt is a check command run through the real sandbox (bubblewrap) on a real tree,
the way tasks/evidence_services.py runs a recipe's checks. Each test asserts both sides:
the attempt got nothing (no secret in the log, no connection, no file outside, no survivor)
and the check's own status says it did not pass. The last test does it all through the
real Celery worker, which must go on running jobs afterwards.
"""

from __future__ import annotations

import http.server
import json
import os
import resource
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from repos import git_client
from repos import services as repo_services
from tasks import evidence, jobs
from tasks.evidence_sandbox import (
    FAILED,
    OUTPUT_EXCEEDED,
    PASSED,
    TIMED_OUT,
    EvidenceError,
    run_command,
    write_acceptance_tests,
)
from tasks.models import CheckRecipe, EvidenceRun, Task
from tests.conftest import wait_for
from tests.factories import RepositoryFactory, pair_of

PROJECT = {
    "calc/__init__.py": "",
    "calc/ops.py": "def add(a, b):\n    return a + b\n",
    "tests/__init__.py": "",
    "tests/test_ops.py": "from calc.ops import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
}
FORK_BOMB = (
    "import os, sys, time\n"
    "for _ in range(100000):\n"
    "    try:\n"
    "        if os.fork() == 0:\n"
    "            time.sleep(1000)\n"
    "            os._exit(0)\n"
    "    except OSError:\n"
    "        pass\n"
    "time.sleep(1000)\n"
)
CONNECT = (
    "import socket, sys\n"
    "socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n"
    "print('CONNECTED')\n"
)
# The names a check's environment may hold: the sandbox's own and the recipe's, no more.
SCRUBBED_ENV = {
    "PATH", "HOME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE", "PIP_DISABLE_PIP_VERSION_CHECK",
    "PIP_NO_INPUT", "MARLIN_TREE", "MARLIN_ENV", "PWD", "SHLVL", "_", "OLDPWD",
}  # fmt: skip


@pytest.fixture
def evidence_dir(settings, tmp_path):
    settings.MARLIN_EVIDENCE_DIR = tmp_path / "evidence"
    settings.MARLIN_EVIDENCE_DIR.mkdir()
    return settings.MARLIN_EVIDENCE_DIR


@pytest.fixture
def tree(tmp_path, evidence_dir) -> Path:
    """A candidate's tree on the host: a small Python project with a test suite."""
    root = tmp_path / "tree"
    for path, content in PROJECT.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content)
    return root


@pytest.fixture
def env_dir(tmp_path) -> Path:
    """A prepared environment, lent read-only to every check."""
    folder = tmp_path / "env"
    folder.mkdir()
    (folder / "marker.txt").write_text("prepared\n")
    return folder


def check(line: str, tree: Path, *args: str, env_dir: Path | None = None, timeout: float = 20):
    """Run a `bash -c` check the way a recipe's check runs; wall time is part of the result."""
    started = time.monotonic()
    ran = run_command(
        ["bash", "-c", line, "check", *args], source=tree, env_dir=env_dir, timeout=timeout
    )
    return ran, time.monotonic() - started


def processes_with(marker: str) -> list[int]:
    """Live host processes whose command line holds `marker` (zombies are already dead)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker.encode() in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def survivors(marker: str, seconds: float = 10) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


# --- Marlin's files, database and environment ----------------------------------------


def _stand_in(folder: Path, name: str, content: str):
    """A file of Marlin's in one of its real folders, removed afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{uuid.uuid4().hex}"
    path.write_text(content)
    return path


def test_marlins_settings_env_file_and_database_file_cannot_be_read(tree):
    base = Path(settings.BASE_DIR)
    settings_text = (base / "marlin" / "settings" / "base.py").read_text()
    database = _stand_in(Path(settings.VAR_DIR), "marlin.sqlite3", "SQLite format 3\0escape-db-row")
    dotenv = _stand_in(base, ".env", "DJANGO_SECRET_KEY=escape-dotenv-secret\n")
    try:
        targets = {
            base / "marlin" / "settings" / "base.py": "MARLIN_EVIDENCE_SETUP_RETRY_SECONDS",
            base / ".env.example": "DJANGO_SECRET_KEY_FILE=",
            dotenv: "escape-dotenv-secret",
            database: "escape-db-row",
        }
        db_name = str(settings.DATABASES["default"]["NAME"])
        if Path(db_name).is_absolute() and Path(db_name).is_file():
            targets[Path(db_name)] = "SQLite format 3"
        assert "MARLIN_EVIDENCE_SETUP_RETRY_SECONDS" in settings_text  # the needle is real
        for path, needle in targets.items():
            ran, seconds = check('cat "$1"', tree, str(path))

            assert ran.status == FAILED, (path, ran.log)
            assert needle not in ran.log and needle not in ran.output
            assert "No such file or directory" in ran.log
            assert seconds < 20
    finally:
        database.unlink()
        dotenv.unlink()


def test_secret_files_and_marlins_folders_under_a_mounted_path_are_covered(
    tree, tmp_path, settings, monkeypatch
):
    # An admin mounts a folder read-only for the checks (MARLIN_SANDBOX_READ_ONLY_PATHS);
    # the secret file named by DJANGO_SECRET_KEY_FILE and the evidence store happen to
    # live in it: both stay out of sight.
    shared = tmp_path / "shared"
    (shared / "evidence").mkdir(parents=True)
    (shared / "evidence" / "stored.json").write_text("escape-stored-results")
    (shared / "secret_key").write_text("escape-secret-from-a-file")
    (shared / "public.txt").write_text("anyone may read this")
    settings.MARLIN_SANDBOX_READ_ONLY_PATHS = [str(shared)]
    settings.MARLIN_EVIDENCE_DIR = shared / "evidence"
    monkeypatch.setenv("DJANGO_SECRET_KEY_FILE", str(shared / "secret_key"))

    ran, _ = check(
        'cat "$1/public.txt"; cat "$1/secret_key" "$1/evidence/stored.json"', tree, str(shared)
    )

    assert "anyone may read this" in ran.output  # the mount itself is there
    assert "escape-secret-from-a-file" not in ran.log
    assert "escape-stored-results" not in ran.log
    assert ran.status == FAILED


def test_the_workers_environment_is_not_in_the_checks(tree, monkeypatch):
    secret = f"escape-secret-key-{uuid.uuid4().hex}"
    monkeypatch.setenv("DJANGO_SECRET_KEY", secret)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    # What this process started with (/proc/<pid>/environ) holds the real service URLs.
    started_with = [
        os.environ[name] for name in ("DATABASE_URL", "REDIS_URL") if name in os.environ
    ]

    ran, _ = check(
        'env; for f in /proc/[0-9]*/environ; do cat "$f"; echo; done; cat /proc/1/environ',
        tree,
    )

    assert ran.status == FAILED  # /proc/1 is the sandbox's root-owned init: no reading it
    assert "Permission denied" in ran.log
    assert secret not in ran.log
    for value in started_with:
        assert value not in ran.log
    names = {line.split("=", 1)[0] for line in ran.output.splitlines() if "=" in line}
    assert "PATH" in names and names <= SCRUBBED_ENV, names - SCRUBBED_ENV


# --- The network ---------------------------------------------------------------------


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"escape-web-page")

    def log_message(self, *args):
        pass


@pytest.fixture
def web_server():
    """A live HTTP server on every address of this host, standing in for Marlin's web server."""
    _CountingHandler.hits = 0
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), _CountingHandler)  # noqa: S104
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _outward_address() -> str | None:
    # The address this host would send from; a UDP "connect" sends no packet.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_loopback_services_and_the_hosts_addresses_are_unreachable(tree, web_server):
    targets = [("127.0.0.1", 5432), ("127.0.0.1", 6379), ("127.0.0.1", web_server),
               ("localhost", web_server)]  # fmt: skip
    if outward := _outward_address():
        targets.append((outward, web_server))
    for host, port in targets:
        # Each is really listening: the attempt is refused by the sandbox, not by absence.
        socket.create_connection((host, port), timeout=3).close()
    hits_before = _CountingHandler.hits

    for host, port in targets:
        ran, seconds = check('python3 -c "$1" "$2" "$3"', tree, CONNECT, host, str(port))

        assert ran.status == FAILED, (host, port, ran.log)
        assert "CONNECTED" not in ran.output
        assert any(word in ran.log for word in ("refused", "unreachable", "Name or service"))
        assert seconds < 20
    assert _CountingHandler.hits == hits_before
    with urllib.request.urlopen(f"http://127.0.0.1:{web_server}/", timeout=5) as page:  # noqa: S310
        assert page.read() == b"escape-web-page"  # the server is still fine


def test_a_check_cannot_reach_outside_hosts_either(tree):
    ran, _ = check('python3 -c "$1" pypi.org 443', tree, CONNECT)

    assert ran.status == FAILED
    assert "CONNECTED" not in ran.output


# --- Writing outside the tree --------------------------------------------------------


def test_nothing_outside_the_tree_can_be_written(tree, env_dir, evidence_dir):
    name = f"escape-{uuid.uuid4().hex}.txt"
    places = [
        Path("/sandbox/source"), Path("/sandbox/env"), Path("/etc"), Path("/usr/lib"),
        tree, evidence_dir, Path(settings.BASE_DIR), Path(settings.VAR_DIR), Path("/"),
    ]  # fmt: skip
    # Where each place is on the host, when it is a host folder of its own.
    on_host = {Path("/sandbox/source"): tree, Path("/sandbox/env"): env_dir}

    for place in places:
        ran, _ = check('echo pwned > "$1"', tree, str(place / name), env_dir=env_dir)

        assert ran.status == FAILED, (place, ran.log)
        assert not (on_host.get(place, place) / name).exists(), place
    # The tree the check ran on is the host's, untouched; so is the environment.
    assert sorted(p.name for p in tree.iterdir()) == ["calc", "tests"]
    assert [p.name for p in env_dir.iterdir()] == ["marker.txt"]


def test_what_a_check_writes_to_its_tree_and_tmp_is_gone_with_it(tree, tmp_path):
    host_tmp = Path("/tmp") / f"escape-{uuid.uuid4().hex}"  # noqa: S108 - the host's /tmp
    ran, _ = check(
        'echo pwned > "$1" && echo changed >> calc/ops.py && cat "$1" && ls calc', tree,
        str(host_tmp),
    )  # fmt: skip

    # The write lands in the check's own /tmp and tree copy: allowed, private, thrown away.
    assert ran.status == PASSED and "pwned" in ran.output
    assert not host_tmp.exists()
    assert (tree / "calc" / "ops.py").read_text() == PROJECT["calc/ops.py"]
    # The next check starts afresh: nothing carried over from the last.
    ran, _ = check('cat "$1" && grep changed calc/ops.py', tree, str(host_tmp))
    assert ran.status == FAILED
    assert "pwned" not in ran.output


# --- Processes, time and output ------------------------------------------------------


def test_a_fork_bomb_fails_its_check_only(tree):
    marker = f"forkbomb-{uuid.uuid4().hex}"
    outcome: dict = {}

    def bomb():
        outcome["run"], outcome["seconds"] = check('python3 -c "$1" "$2"', tree, FORK_BOMB,
                                                   marker, timeout=6)  # fmt: skip
        outcome["ended"] = time.monotonic()

    thread = threading.Thread(target=bomb)
    thread.start()
    time.sleep(2)
    # A neighbour (the other candidate's check, in the worker's other process) runs while
    # the bomb holds every process it may have: it needs a few of its own, and gets them.
    neighbour, _ = check("for i in $(seq 20); do sleep 0.2 & done; wait; echo neighbour-ok", tree)
    neighbour_ended = time.monotonic()
    thread.join()

    assert neighbour.status == PASSED and "neighbour-ok" in neighbour.output, neighbour.log
    assert neighbour_ended < outcome["ended"]  # beside the bomb, not after it
    assert outcome["run"].status == TIMED_OUT
    assert outcome["seconds"] < 30
    assert survivors(marker) == []
    # The host can still fork.
    assert subprocess.run(["true"], check=False).returncode == 0


def test_an_infinite_loop_is_stopped_with_everything_it_started(tree):
    marker = f"loop-{uuid.uuid4().hex}"
    # A child that leaves the session and ignores SIGTERM, then a busy loop.
    line = 'setsid bash -c "trap \\"\\" TERM; sleep 1000" "$1" & while :; do :; done'

    ran, seconds = check(line, tree, marker, timeout=2)

    assert ran.status == TIMED_OUT and ran.exit_code is None
    assert "[marlin] stopped: still running after 2 seconds." in ran.log
    assert seconds < 15
    assert survivors(marker) == []


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_ten_gigabytes_of_output_stop_the_check_early(tree, stream):
    redirect = ">&2" if stream == "stderr" else ""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB

    ran, seconds = check(f"head -c 10G /dev/zero | tr '\\0' x {redirect}", tree)

    assert ran.status == OUTPUT_EXCEEDED
    assert "[marlin] stopped: wrote more than" in ran.log
    assert seconds < 20
    assert len(ran.log) <= evidence.LOG_KEPT_CHARS + 200
    # The worker kept at most the output limit, not 10 GB.
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert grown_kib < 64 * 1024


def test_ten_gigabytes_written_to_the_tree_or_tmp_fill_only_the_checks_own_disk(
    tree, settings, tmp_path
):
    settings.MARLIN_EVIDENCE_TREE_MB = 32
    settings.MARLIN_SANDBOX_TMP_MB = 16
    free_before = shutil.disk_usage(tmp_path).free

    for target in ("big.bin", "/tmp/big.bin"):
        ran, seconds = check('head -c 10G /dev/zero > "$1"', tree, target)

        assert ran.status == FAILED, (target, ran.log)
        assert "No space left on device" in ran.log
        assert seconds < 20
    assert not (tree / "big.bin").exists()
    # Nothing reached a host disk (others may write meanwhile: a loose bound, far below 10 GB).
    assert shutil.disk_usage(tmp_path).free > free_before - 512 * 1024 * 1024


# --- A symlink to / ------------------------------------------------------------------


def test_a_symlink_to_the_root_reaches_only_the_sandboxs_own_read_only_system(tree):
    # git checks a committed symlink out as a symlink, whatever it points to.
    (tree / "root").symlink_to("/")
    (tree / "settings.py").symlink_to(Path(settings.BASE_DIR) / "marlin" / "settings" / "base.py")
    name = f"escape-{uuid.uuid4().hex}"

    listing, _ = check("ls root/", tree)
    reads = [
        ("cat root/etc/shadow", "root:"),
        (f"cat root{settings.BASE_DIR}/marlin/settings/base.py", "MARLIN_EVIDENCE_DIR"),
        ("cat settings.py", "MARLIN_EVIDENCE_DIR"),
        ("cat root/proc/1/environ", "PATH="),
    ]
    writes = [f"root/etc/{name}", f"root/usr/{name}", f"root/sandbox/source/{name}",
              f"root{tree}/{name}", f"root{settings.BASE_DIR}/{name}"]  # fmt: skip

    assert listing.status == PASSED
    seen = set(listing.output.split())
    assert seen <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sandbox",
                    "sbin", "tmp", "usr"}, seen  # fmt: skip
    for line, needle in reads:
        ran, _ = check(line, tree)
        assert ran.status == FAILED, (line, ran.log)
        assert needle not in ran.output
    for path in writes:
        ran, _ = check('echo pwned > "$1"', tree, path)
        assert ran.status == FAILED, (path, ran.log)
    for host in (Path("/etc"), Path("/usr"), tree, Path(settings.BASE_DIR)):
        assert not (host / name).exists()


# --- Acceptance tests into a tree a candidate changed --------------------------------


def test_acceptance_tests_are_not_written_through_a_symlinked_folder(tree, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(tree / "tests")
    (tree / "tests").symlink_to(outside)

    with pytest.raises(EvidenceError, match="tests is not a folder in this tree"):
        write_acceptance_tests(tree, [{"path": "tests/test_accept.py", "content": "x = 1\n"}])

    assert list(outside.iterdir()) == []


def test_acceptance_tests_replace_a_symlinked_file_instead_of_writing_through_it(tree, tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text("host file\n")
    (tree / "tests" / "test_accept.py").symlink_to(outside)

    write_acceptance_tests(tree, [{"path": "tests/test_accept.py", "content": "x = 1\n"}])

    assert outside.read_text() == "host file\n"
    written = tree / "tests" / "test_accept.py"
    assert not written.is_symlink() and written.read_text() == "x = 1\n"


@pytest.mark.parametrize("path", ["../escape.py", "tests/../../escape.py", "/tmp/escape.py"])
def test_acceptance_test_paths_that_leave_the_tree_are_refused(tree, path):
    with pytest.raises(EvidenceError, match="not a plain relative path"):
        write_acceptance_tests(tree, [{"path": path, "content": "x = 1\n"}])

    assert not (tree.parent / "escape.py").exists()
    assert not Path("/tmp/escape.py").exists()  # noqa: S108


# --- Through the real worker ---------------------------------------------------------

CONNECT_LINE = (
    'python3 -c "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])),'
    " timeout=3); print('CONNECTED')\" 127.0.0.1"
)


def _hostile_checks(*, web_port: int, marker: str) -> list[dict]:
    """Checks an admin could save (they pass recipe validation), each an escape attempt."""
    base = settings.BASE_DIR
    return [
        {"name": "fork bomb", "command": ["python3", "-c", FORK_BOMB, marker],
         "timeout_seconds": 3},
        {"name": "infinite loop", "command": ["python3", "-c", "while True: pass", marker],
         "timeout_seconds": 2},
        {"name": "ten gigabytes", "command": ["bash", "-c", "head -c 10G /dev/zero | tr '\\0' x"]},
        {"name": "fill the disk", "command": ["bash", "-c", "head -c 10G /dev/zero > big.bin"]},
        {"name": "read secrets", "command": ["bash", "-c",
            f"env; cat /proc/1/environ root/etc/shadow root{base}/marlin/settings/base.py"]},
        {"name": "reach services", "command": ["bash", "-c",
            f"for port in 5432 6379 {web_port}; do {CONNECT_LINE} $port && exit 0; done; exit 1"]},
        {"name": "write outside", "command": ["bash", "-c", "echo pwned > root/etc/escape-worker"]},
    ]  # fmt: skip


NEIGHBOUR_CHECKS = [
    # Needs a few processes of its own, again and again while the bomb runs beside it.
    {"name": "neighbour", "command": ["bash", "-c",
        "for round in 1 2 3 4 5 6; do for i in $(seq 20); do sleep 0.1 & done; wait; "
        "sleep 0.5; done; python3 -c 'import calc.ops'"]},
]  # fmt: skip


@pytest.fixture
def worker_secret(monkeypatch):
    """A secret in the environment the worker process starts with."""
    secret = f"escape-worker-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("MARLIN_ESCAPE_TEST_SECRET", secret)
    return secret


def _queue(task: Task, checks: list[dict], key: str) -> EvidenceRun:
    recipe = CheckRecipe(repository=task.repository, checks=checks)
    recipe.full_clean(exclude=["repository"])
    snapshot = recipe.snapshot()
    run = EvidenceRun.objects.create(task=task, key=key, recipe=snapshot,
                                     recipe_digest=evidence.recipe_digest(snapshot))  # fmt: skip
    jobs.evidence_collect_run.delay(run_id=run.pk)
    return run


def _finished(run: EvidenceRun, timeout: float = 90) -> EvidenceRun:
    wait_for(lambda: EvidenceRun.objects.get(pk=run.pk).is_terminal, timeout=timeout,
             message=f"evidence run {run.pk}")  # fmt: skip
    run.refresh_from_db()
    return run


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_hostile_checks_fail_only_themselves_and_the_worker_stays_healthy(
    worker_secret, celery_worker_process, git_server, repo_cache_dir, contractor, project,
    web_server,
):  # fmt: skip
    repository = RepositoryFactory(full_name="demo/hostile")
    sha = git_client.create_bare_repository(
        git_server.root / "demo" / "hostile.git", PROJECT, message="calc with a link to /",
        symlinks={"root": "/"},
    )  # fmt: skip
    repository.clone_url = f"{git_server.base_url}/demo/hostile.git"
    repository.save()
    shutil.rmtree(repo_services.repository_cache_path(repository), ignore_errors=True)
    repository.queue_clone()
    repo_services.repository_clone(repository_id=repository.pk)
    task = Task.objects.create(project=project, **pair_of(project), repository=repository,
                               contractor=contractor,
                               base_ref="main", commit_sha=sha, title="Hostile checks",
                               kind=Task.Kind.BUG_FIX)  # fmt: skip

    marker = f"hostile-{uuid.uuid4().hex}"
    started = time.monotonic()
    hostile = _queue(task, _hostile_checks(web_port=web_server, marker=marker), key="hostile")
    neighbour = _queue(task, NEIGHBOUR_CHECKS, key="neighbour")
    hostile, neighbour = _finished(hostile), _finished(neighbour)
    seconds = time.monotonic() - started

    assert hostile.status == EvidenceRun.Status.SUCCEEDED, hostile.error
    statuses = {c["name"]: c["status"] for c in hostile.results["checks"]}
    assert statuses == {
        "fork bomb": TIMED_OUT, "infinite loop": TIMED_OUT, "ten gigabytes": OUTPUT_EXCEEDED,
        "fill the disk": FAILED, "read secrets": FAILED, "reach services": FAILED,
        "write outside": FAILED,
    }  # fmt: skip
    logs = {c["name"]: c["log"] for c in hostile.results["checks"]}
    # Each failed for the reason intended, not by a typo in its command.
    assert logs["reach services"].count("ConnectionRefusedError") == 3, logs["reach services"]
    assert "/proc/1/environ: Permission denied" in logs["read secrets"]
    assert "root/etc/escape-worker: Read-only file system" in logs["write outside"]
    assert (
        "No space left on device" in logs["fill the disk"] or "File size" in logs["fill the disk"]
    )
    stored = json.dumps(hostile.results)
    assert worker_secret not in stored
    assert "MARLIN_EVIDENCE_SETUP_RETRY_SECONDS" not in stored and "CONNECTED" not in stored
    assert os.environ.get("DATABASE_URL", "no-url") not in stored
    assert not Path("/etc/escape-worker").exists()
    assert _CountingHandler.hits == 0
    assert seconds < 60
    # The other run, beside the bomb in the worker's other process, was not disturbed.
    assert neighbour.status == EvidenceRun.Status.SUCCEEDED, neighbour.error
    assert neighbour.results["checks"][0]["status"] == PASSED, neighbour.results["checks"][0]

    # Afterwards the same worker runs the next job as if nothing had happened.
    after = _finished(_queue(task, NEIGHBOUR_CHECKS[:1], key="after"))
    assert after.status == EvidenceRun.Status.SUCCEEDED
    assert after.results["checks"][0]["status"] == PASSED
    assert celery_worker_process.poll() is None
    assert survivors(marker) == []
