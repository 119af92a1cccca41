"""Every piece of untrusted code Marlin runs goes through here: Debian's bubblewrap.

The sandboxed command gets new PID, IPC, UTS, user, cgroup and (unless the caller allows
it) network namespaces, so it sees neither the worker's processes nor its /proc nor the
loopback services. The host's system directories are mounted read-only; Marlin's own
directories and secret files are covered; `workdir` is the only writable place. The
environment is exactly the one given. A root worker runs each sandbox under an unprivileged
uid of its own (`uid_pool()`), so the per-uid limits of one never starve another.
Without a working bubblewrap nothing runs: `SandboxUnavailable` says why, and there is no
unsandboxed fallback.
"""

from __future__ import annotations

import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from marlin.exceptions import ApplicationError

# What a command needs to run at all; the rest of the host is not mounted.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
# Inside the sandbox /tmp is its own fresh tmpfs, shared with nobody.
SANDBOX_TMP = "/tmp"  # noqa: S108
SANDBOX_HOME = f"{SANDBOX_TMP}/home"
# The system's public certificate authorities: what every TLS client needs, never a secret.
PUBLIC_TRUST_STORES = (
    "/etc/ssl/certs", "/usr/share/ca-certificates", "/etc/pki/tls/certs", "/etc/pki/ca-trust",
)  # fmt: skip
# A root worker gives each sandbox running at the same time its own uid, from
# MARLIN_SANDBOX_UID on: the kernel counts processes (RLIMIT_NPROC), pipe buffers and
# inotify watches per uid, so with one shared uid a fork bomb in one check would make
# every other check running beside it fail.
UID_SLOTS = 64
# The sandbox is the first thing the kernel's OOM killer takes, and yields the CPU to
# the worker, the database and the web server.
OOM_SCORE_ADJ = 1000
NICENESS = 10
# How often a running sandbox is looked at: its time, and the size of what it writes to disk.
DISK_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Mount:
    """A place inside the sandbox besides the workdir: a host directory (read-only unless
    `writable`, which lends it to the sandbox uid for the run) or, with no `source`, a
    fresh tmpfs of at most `size_mb`, gone with the sandbox."""

    target: str
    source: Path | None = None
    writable: bool = False
    size_mb: int | None = None


class SandboxUnavailable(ApplicationError):
    """bubblewrap is missing or cannot create its namespaces here; nothing was run."""


@dataclass(frozen=True)
class SandboxResult:
    returncode: int | None  # None when the sandbox was killed
    stdout: bytes
    stderr: bytes
    timed_out: bool
    output_exceeded: bool
    # The writable host directories outgrew `max_written_mb`: the sandbox was killed.
    disk_exceeded: bool = False


def _hidden_paths() -> list[Path]:
    """Marlin's code, data, repository cache and secret files: never inside a sandbox."""
    paths = [
        Path(settings.BASE_DIR),
        Path(settings.VAR_DIR),
        Path(settings.MARLIN_REPO_CACHE_DIR),
        Path(settings.MARLIN_EXPORT_DIR),
        Path(settings.MARLIN_EVIDENCE_DIR),
    ]
    # Secrets read from NAME_FILE (docker secrets, a mounted .env) may live under /etc; the
    # public CA bundle (SSL_CERT_FILE) is no secret, and pip or git inside need it.
    paths += [Path(value) for name, value in os.environ.items() if name.endswith("_FILE") and value]
    resolved = [path.resolve() for path in paths if path.is_absolute()]
    return [path for path in resolved if not _under(path, PUBLIC_TRUST_STORES)]


def _under(path: Path, roots: Sequence[str]) -> bool:
    return any(path == Path(root) or Path(root) in path.parents for root in roots)


def _mount_args(workdir: Path | None, mounts: Sequence[Mount], tmp_size_mb: int) -> list[str]:
    # A size-capped /tmp: what a command writes there is memory, bounded, and gone after.
    args = ["--proc", "/proc", "--dev", "/dev", "--perms", "1777"]
    args += ["--size", str(tmp_size_mb * 1024 * 1024), "--tmpfs", SANDBOX_TMP]
    args += ["--perms", "0777", "--dir", SANDBOX_HOME]
    bound: list[str] = []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            # /bin -> usr/bin on merged-/usr systems: keep the link, not a second mount.
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
            bound.append(path)
    for path in settings.MARLIN_SANDBOX_READ_ONLY_PATHS:
        args += [*_searchable_parents(Path(path), bound), "--ro-bind", path, path]
        # Marlin's folders and secret files inside an admin's extra path are covered too.
        bound.append(str(Path(path).resolve()))
    for hidden in _hidden_paths():
        if not _under(hidden, bound) or not hidden.exists():
            continue
        if hidden.is_dir():
            args += ["--tmpfs", str(hidden)]
        else:
            args += ["--ro-bind", "/dev/null", str(hidden)]
    # Last, so they show even when a temp folder lies under a covered directory.
    for mount in mounts:
        target = Path(mount.target)
        args += _searchable_parents(target, bound)
        if mount.source is None:
            size = ["--size", str(mount.size_mb * 1024 * 1024)] if mount.size_mb else []
            args += ["--perms", "0777", *size, "--tmpfs", mount.target]
        else:
            kind = "--bind" if mount.writable else "--ro-bind"
            args += [kind, str(Path(mount.source).resolve()), mount.target]
    if workdir is None:
        return [*args, "--chdir", "/"]
    args += [*_searchable_parents(workdir, bound), "--bind", str(workdir), str(workdir)]
    return [*args, "--chdir", str(workdir)]


def _searchable_parents(path: Path, bound: list[str]) -> list[str]:
    # bwrap creates a mount point's missing parents with the host's modes: a 0700 parent
    # (pytest's /tmp folder, a private TMPDIR) would shut the unprivileged uid out.
    args = []
    for parent in reversed(path.parents):
        if parent != Path("/") and not _under(parent, bound):
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def uid_pool() -> range:
    """The uids a root worker runs sandboxes under (gid = uid), one per running sandbox."""
    return range(settings.MARLIN_SANDBOX_UID, settings.MARLIN_SANDBOX_UID + UID_SLOTS)


@contextmanager
def _sandbox_ids(timeout: float) -> Iterator[tuple[int, int] | None]:
    """The unprivileged uid/gid to drop to when the worker runs as root, else None.

    RLIMIT_NPROC is never enforced for uid 0 (user namespaces map back to it), so a fork
    bomb is only contained when the sandbox runs under a real unprivileged uid, and only
    kept from its neighbours when that uid is its own: each is held, for the whole run, by
    an abstract socket named after it, which the kernel frees even if this process dies.
    """
    if os.geteuid() != 0:
        yield None
        return
    deadline = time.monotonic() + max(timeout, 5.0)
    while True:
        for uid in uid_pool():
            holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                holder.bind(f"\0marlin-sandbox-uid-{uid}")
            except OSError:
                holder.close()
                continue
            try:
                # A process left behind under this uid (it should never be) would share
                # its limits: take another.
                if _has_processes(uid):
                    continue
                yield uid, uid
                return
            finally:
                holder.close()
        if time.monotonic() > deadline:
            raise SandboxUnavailable(
                f"The sandbox is not available: all {UID_SLOTS} sandbox uids are in use."
            )
        time.sleep(0.2)


def _has_processes(uid: int) -> bool:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with suppress(OSError):
                if entry.stat().st_uid == uid:
                    return True
    return False


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for parent, dirs, files in os.walk(root):  # never follows a symlink
        for name in dirs + files:
            with suppress(FileNotFoundError):
                os.chown(os.path.join(parent, name), uid, gid, follow_symlinks=False)


@contextmanager
def _lent_to(places: Sequence[Path], ids: tuple[int, int] | None) -> Iterator[None]:
    """Make `places` writable by the sandbox uid, and the worker's own again afterwards."""
    if ids is None or not places:
        yield
        return
    owners = [(place, place.stat()) for place in places]
    for place in places:
        _chown_tree(place, *ids)
    try:
        yield
    finally:
        for place, owner in owners:
            _chown_tree(place, owner.st_uid, owner.st_gid)


def _limits(memory_mb: int, max_processes: int, max_file_mb: int) -> None:
    # Runs in the child between fork and exec: bwrap and all it starts inherit these.
    with suppress(OSError), open("/proc/self/oom_score_adj", "w") as handle:
        handle.write(str(OOM_SCORE_ADJ))  # raising it needs no privilege; best effort
    os.nice(NICENESS)
    resource.setrlimit(resource.RLIMIT_NPROC, (max_processes, max_processes))
    if max_file_mb:
        # No single file on a host disk (a lent directory) can outgrow this.
        size = max_file_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    if memory_mb:
        size = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _setpriv() -> str:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise SandboxUnavailable(
            "The sandbox is not available: setpriv (util-linux) is missing, and a worker "
            "running as root needs it to drop privileges. Untrusted code is never run without it."
        )
    return setpriv


def _bwrap() -> str:
    bwrap = shutil.which(settings.MARLIN_SANDBOX_BWRAP)
    if bwrap is None:
        raise SandboxUnavailable(
            f"The sandbox is not available: bubblewrap ({settings.MARLIN_SANDBOX_BWRAP}) is not "
            "installed on this server (Debian: apt-get install bubblewrap). Untrusted code is "
            "never run without it."
        )
    return bwrap


def _popen(
    command: tuple[list[str], list[str]], memory_mb: int, max_processes: int, max_file_mb: int
) -> subprocess.Popen:
    """Start bwrap with its options read from a file (--args), not its command line: the
    sandbox can read its init's /proc/1/cmdline, which would show the host paths mounted and
    every environment value set."""
    options, argv = command
    with tempfile.TemporaryFile() as args_file:
        args_file.write(b"".join(option.encode() + b"\0" for option in options[1:]))
        args_file.seek(0)
        fd = args_file.fileno()
        return subprocess.Popen(
            [options[0], "--args", str(fd), *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={},
            cwd="/",
            pass_fds=(fd,),
            start_new_session=True,  # its own process group: one killpg stops it all
            preexec_fn=lambda: _limits(memory_mb, max_processes, max_file_mb),
        )


def run(
    argv: Sequence[str],
    *,
    workdir: Path | None,
    mounts: Sequence[Mount] = (),
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
    timeout: float,
    network: bool = False,
    memory_mb: int | None = None,
    max_processes: int | None = None,
    max_output_bytes: int | None = None,
    max_file_mb: int | None = None,
    tmp_size_mb: int | None = None,
    max_written_mb: int | None = None,
) -> SandboxResult:
    """Run `argv` in a fresh sandbox whose only writable places are `workdir` (the command's
    working directory, at its own path; None: the command starts in `/`) and `mounts`.

    The command and everything it starts are killed at `timeout` seconds, when stdout or
    stderr exceeds `max_output_bytes`, when the writable host directories together hold
    more than `max_written_mb` (measured about every second, so it may overshoot by what
    can be written in that time; RLIMIT_FSIZE bounds each file), and when this process
    dies (--die-with-parent).
    Raises SandboxUnavailable, having run nothing, when bubblewrap is missing or broken.
    """
    memory_mb = settings.MARLIN_SANDBOX_MEMORY_MB if memory_mb is None else memory_mb
    max_processes = max_processes or settings.MARLIN_SANDBOX_MAX_PROCESSES
    max_output_bytes = max_output_bytes or settings.MARLIN_SANDBOX_MAX_OUTPUT_BYTES
    max_file_mb = settings.MARLIN_SANDBOX_MAX_FILE_MB if max_file_mb is None else max_file_mb
    tmp_size_mb = tmp_size_mb or settings.MARLIN_SANDBOX_TMP_MB
    workdir = None if workdir is None else Path(workdir).resolve()
    lent = [Path(m.source).resolve() for m in mounts if m.source is not None and m.writable]
    if workdir is not None:
        lent.append(workdir)
    watch = None
    if max_written_mb and lent:
        watch = _disk_watch(lent, max_written_mb * 1024 * 1024)
    with _sandbox_ids(timeout) as ids:
        command = _command(argv, workdir, mounts, env, network, tmp_size_mb, ids)
        with _lent_to(lent, ids):
            process = _popen(command, memory_mb, max_processes, max_file_mb)
            result = _communicate(process, stdin, timeout, max_output_bytes, watch)
    marker = b"marlin-sandbox-started\n"
    stopped = result.timed_out or result.output_exceeded or result.disk_exceeded
    if not result.stderr.startswith(marker) and not stopped:
        reason = result.stderr.decode(errors="replace").strip()[-500:]
        raise SandboxUnavailable(
            f"The sandbox is not available: bubblewrap could not start ({reason}). "
            "Untrusted code is never run without it."
        )
    return SandboxResult(
        returncode=result.returncode,
        stdout=result.stdout,
        stderr=result.stderr.removeprefix(marker),
        timed_out=result.timed_out,
        output_exceeded=result.output_exceeded,
        disk_exceeded=result.disk_exceeded,
    )


def _command(
    argv: Sequence[str], workdir: Path | None, mounts: Sequence[Mount],
    env: dict[str, str] | None, network: bool, tmp_size_mb: int, ids: tuple[int, int] | None,
) -> tuple[list[str], list[str]]:  # fmt: skip
    """bwrap's options (the binary first; they go through --args) and the command line."""
    if ids is None:
        # An unprivileged worker: bwrap makes a user namespace, in which RLIMIT_NPROC holds.
        isolation = ["--unshare-all", "--unshare-user", "--cap-drop", "ALL"]
        drop: list[str] = []
    else:
        # A root worker: RLIMIT_NPROC never binds uid 0, nor a user namespace mapped back to
        # it, so bwrap stays in the host's user namespace and setpriv drops to a real
        # unprivileged uid with no capabilities before anything untrusted runs.
        isolation = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
                     "--unshare-cgroup-try", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]  # fmt: skip
        drop = [_setpriv(), f"--reuid={ids[0]}", f"--regid={ids[1]}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]  # fmt: skip
    if network:
        isolation = [arg for arg in isolation if arg != "--unshare-net"] + ["--share-net"]
    command = [
        _bwrap(),
        *isolation,
        "--die-with-parent",
        "--new-session",
        *_mount_args(workdir, mounts, tmp_size_mb),
    ]
    sandbox_env = {"PATH": SANDBOX_PATH, "HOME": SANDBOX_HOME, "TMPDIR": SANDBOX_TMP, **(env or {})}
    command.append("--clearenv")
    for name, value in sandbox_env.items():
        command += ["--setenv", name, value]
    # bwrap reports its own failures on stderr with exit status 1 before running anything;
    # this marker tells them apart from the command's own exit status 1.
    started = ["/bin/sh", "-c", 'echo marlin-sandbox-started >&2 && exec "$@"', "sh"]
    return command, ["--", *drop, *started, *argv]


def disk_usage(paths: Sequence[Path]) -> int:
    """Bytes the trees at `paths` take on disk, never following a symlink; every entry
    counts at least a block, so a million empty files are not free."""
    total = 0
    for root in paths:
        for parent, dirs, files in os.walk(root):
            for name in dirs + files:
                with suppress(OSError):
                    total += max(os.lstat(os.path.join(parent, name)).st_blocks * 512, 4096)
    return total


def _disk_watch(places: list[Path], max_bytes: int) -> Callable[[], bool]:
    """A callable, True once `places` hold more than `max_bytes`; it measures again only
    after DISK_POLL_SECONDS or twenty times the last measurement, whichever is longer."""
    next_at = 0.0

    def exceeded() -> bool:
        nonlocal next_at
        started = time.monotonic()
        if started < next_at:
            return False
        over = disk_usage(places) > max_bytes
        spent = time.monotonic() - started
        next_at = started + max(DISK_POLL_SECONDS, 20 * spent)
        return over

    return exceeded


def _communicate(
    process: subprocess.Popen, stdin: bytes, timeout: float, max_output_bytes: int,
    watch: Callable[[], bool] | None = None,
) -> SandboxResult:  # fmt: skip
    """Feed stdin, collect bounded output, and kill the process group on any way out."""
    assert process.stdin and process.stdout and process.stderr
    buffers = {process.stdout: bytearray(), process.stderr: bytearray()}
    deadline = time.monotonic() + timeout
    timed_out = exceeded = disk_exceeded = False
    pending = memoryview(stdin)
    try:
        with selectors.DefaultSelector() as selector:
            for stream in buffers:
                os.set_blocking(stream.fileno(), False)
                selector.register(stream, selectors.EVENT_READ)
            os.set_blocking(process.stdin.fileno(), False)
            if pending:
                selector.register(process.stdin, selectors.EVENT_WRITE)
            else:
                process.stdin.close()
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                if watch is not None and watch():
                    disk_exceeded = True
                    break
                for key, _ in selector.select(min(remaining, DISK_POLL_SECONDS)):
                    stream = key.fileobj
                    if stream is process.stdin:
                        try:
                            written = os.write(stream.fileno(), pending[:65536])
                        except BrokenPipeError:
                            written = len(pending)
                        pending = pending[written:]
                        if not pending:
                            selector.unregister(stream)
                            stream.close()
                        continue
                    chunk = os.read(stream.fileno(), 65536)
                    if not chunk:
                        selector.unregister(stream)
                        continue
                    buffers[stream] += chunk
                    if len(buffers[stream]) > max_output_bytes:
                        exceeded = True
                if exceeded:
                    break
            while not (timed_out or exceeded or disk_exceeded):
                # Output closed; the command may still be writing to disk.
                try:
                    process.wait(
                        timeout=max(min(deadline - time.monotonic(), DISK_POLL_SECONDS), 0.1)
                    )
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() >= deadline:
                        timed_out = True
                    elif watch is not None and watch():
                        disk_exceeded = True
    finally:
        # On every way out (time limit, output limit, the job's own soft limit): killing
        # bwrap's group kills the namespace's init, and with it every process inside.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            with suppress(OSError):
                stream.close()
    return SandboxResult(
        returncode=None if (timed_out or exceeded or disk_exceeded) else process.returncode,
        stdout=bytes(buffers[process.stdout][:max_output_bytes]),
        stderr=bytes(buffers[process.stderr][:max_output_bytes]),
        timed_out=timed_out,
        output_exceeded=exceeded,
        disk_exceeded=disk_exceeded,
    )
