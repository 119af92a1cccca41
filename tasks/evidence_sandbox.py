"""Running a recipe's commands in marlin.sandbox (bubblewrap).

Every command gets a throwaway copy of the tree in a size-capped tmpfs at /sandbox/tree,
the prepared environment at /sandbox/env (writable only for setup), a private /tmp, no
network (setup alone may reach the package index), a scrubbed environment and the
sandbox's limits on time, memory, processes and output. Whatever it writes is gone when
it ends; what it reports leaves through its bounded output only.

Setup runs once per repository, commit and recipe: its environment is kept under
MARLIN_EVIDENCE_DIR and reused, read-only, by every check at that commit.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import stat
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from marlin import egress, sandbox
from marlin.exceptions import ApplicationError
from tasks import evidence

SOURCE = "/sandbox/source"
EGRESS_READY = "/tmp/.marlin-egress-ready"  # noqa: S108 - the sandbox's private tmpfs
# Start the egress forwarder when given (setup), copy the tree into its tmpfs, run the
# command there, then print the report after a boundary the caller chose: the tmpfs (and
# anything left in it) dies with the sandbox.
_SCRIPT = f"""
boundary="$1"; forwarder="$2"; shift 2
if [ -n "$forwarder" ]; then
  python3 -c "$forwarder" {egress.SANDBOX_DIR}/{egress.SOCKET_NAME} {EGRESS_READY} >/dev/null 2>&1 &
  for _ in $(seq 200); do [ -e {EGRESS_READY} ] && break; sleep 0.05; done
fi
cp -RP {SOURCE}/. {evidence.TREE}/ 2>/dev/null || {{
  echo "marlin: the tree does not fit in the check's disk (TREE_MB MB)" >&2; exit 125; }}
cd {evidence.TREE} || exit 125
"$@" </dev/null
status=$?
printf '\\n%s\\n' "$boundary"
cat {evidence.REPORT} 2>/dev/null
exit $status
"""
PASSED, FAILED, TIMED_OUT, OUTPUT_EXCEEDED, ERROR = (
    "passed", "failed", "timed_out", "output_exceeded", "error",
)  # fmt: skip
# Only setup can have it: checks write to their tmpfs, never to a host disk.
DISK_EXCEEDED = "disk_exceeded"
READY_MARK = ".marlin-setup.json"


class EvidenceError(ApplicationError):
    """The evidence of a tree could not be gathered at all (not a failing check)."""


@dataclass(frozen=True)
class CommandRun:
    status: str
    exit_code: int | None
    duration_ms: int
    log: str
    log_truncated: bool
    report: str = ""
    # The whole standard output (bounded by MARLIN_EVIDENCE_MAX_OUTPUT_BYTES), for findings.
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.status == PASSED


@dataclass
class SetupOutcome:
    ok: bool
    cached: bool
    path: Path | None
    duration_ms: int
    log: str = ""
    log_truncated: bool = False
    reason: str = ""
    commands: list[dict] = field(default_factory=list)


def availability() -> str | None:
    """None when checks can run here; otherwise why not, in words for an admin."""
    if not settings.MARLIN_EVIDENCE_ENABLED:
        return "Evidence is switched off by MARLIN_EVIDENCE_ENABLED=false."
    if shutil.which(settings.MARLIN_SANDBOX_BWRAP) is None:
        return (
            f"Evidence is switched off: bubblewrap ({settings.MARLIN_SANDBOX_BWRAP}) is not "
            "installed on this server (Debian: apt-get install bubblewrap). Checks never run "
            "unsandboxed."
        )
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "Evidence is switched off: setpriv (util-linux) is missing on this server."
    return None


def _environment() -> dict[str, str]:
    return {
        "LANG": "C.UTF-8",
        "PATH": f"{evidence.ENV}/venv/bin:{evidence.ENV}/bin:{sandbox.SANDBOX_PATH}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "MARLIN_TREE": evidence.TREE,
        "MARLIN_ENV": evidence.ENV,
    }


def run_command(
    argv: Sequence[str],
    *,
    source: Path,
    env_dir: Path | None,
    env_writable: bool = False,
    network: bool = False,
    timeout: float,
) -> CommandRun:
    """Run one command on a throwaway copy of `source`; its status says how it ended.

    With `network`, the command reaches MARLIN_EVIDENCE_SETUP_HOSTS through the egress
    proxy (marlin/egress.py), and nothing else: it never shares the worker's network.
    Raises EvidenceError (having run nothing) when the sandbox is not available.
    """
    if network:
        with egress.EgressProxy(
            settings.MARLIN_EVIDENCE_SETUP_HOSTS, networks=settings.MARLIN_EVIDENCE_SETUP_NETWORKS
        ) as proxy:  # fmt: skip
            return _run(argv, source=source, env_dir=env_dir, env_writable=env_writable,
                        timeout=timeout, proxy=proxy)  # fmt: skip
    return _run(argv, source=source, env_dir=env_dir, env_writable=env_writable,
                timeout=timeout, proxy=None)  # fmt: skip


def _run(
    argv: Sequence[str],
    *,
    source: Path,
    env_dir: Path | None,
    env_writable: bool,
    timeout: float,
    proxy: egress.EgressProxy | None,
) -> CommandRun:
    boundary = f"marlin-report-{secrets.token_hex(16)}"
    mounts = [
        sandbox.Mount(target=SOURCE, source=source),
        sandbox.Mount(target=evidence.TREE, size_mb=settings.MARLIN_EVIDENCE_TREE_MB),
    ]
    if env_dir is not None:
        mounts.append(sandbox.Mount(target=evidence.ENV, source=env_dir, writable=env_writable))
    env = _environment()
    if proxy is not None:
        mounts.append(sandbox.Mount(target=egress.SANDBOX_DIR, source=proxy.folder))
        env |= egress.environment()
    script = _SCRIPT.replace("TREE_MB", str(settings.MARLIN_EVIDENCE_TREE_MB))
    started = time.monotonic()
    try:
        result = sandbox.run(
            ["/bin/sh", "-c", script, "evidence", boundary,
             egress.FORWARDER if proxy is not None else "", *argv],
            workdir=None,
            mounts=mounts,
            env=env,
            timeout=timeout,
            max_output_bytes=settings.MARLIN_EVIDENCE_MAX_OUTPUT_BYTES,
            # Setup writes to a host disk: bounded while it runs, not only once it is done.
            max_written_mb=settings.MARLIN_EVIDENCE_ENV_MAX_MB if env_writable else None,
        )  # fmt: skip
    except sandbox.SandboxUnavailable as exc:
        raise EvidenceError(exc.message) from exc
    duration_ms = int((time.monotonic() - started) * 1000)
    output, _, report = result.stdout.rpartition(f"\n{boundary}\n".encode())
    if not _:
        output, report = result.stdout, b""
    if result.timed_out:
        status = TIMED_OUT
    elif result.output_exceeded:
        status = OUTPUT_EXCEEDED
    elif result.disk_exceeded:
        status = DISK_EXCEEDED
    elif result.returncode == 125:
        status = ERROR
    else:
        status = PASSED if result.returncode == 0 else FAILED
    log, truncated = _log(output + result.stderr)
    if result.timed_out:
        log += f"\n[marlin] stopped: still running after {timeout:.0f} seconds."
    elif result.output_exceeded:
        log += (
            f"\n[marlin] stopped: wrote more than {settings.MARLIN_EVIDENCE_MAX_OUTPUT_BYTES} "
            "bytes of output."
        )
    elif result.disk_exceeded:
        log += (
            f"\n[marlin] stopped: wrote more than {settings.MARLIN_EVIDENCE_ENV_MAX_MB} MB "
            f"to {evidence.ENV}."
        )
    return CommandRun(
        status=status,
        exit_code=result.returncode,
        duration_ms=duration_ms,
        log=log,
        log_truncated=truncated,
        report=report.decode("utf-8", errors="replace"),
        output=output.decode("utf-8", errors="replace"),
    )


def _log(raw: bytes) -> tuple[str, bool]:
    """The end of the output (where failures are), bounded; True if some was cut."""
    text = raw.decode("utf-8", errors="replace")
    if len(text) <= evidence.LOG_KEPT_CHARS:
        return text, False
    return text[-evidence.LOG_KEPT_CHARS :], True


# --- Setup, cached ------------------------------------------------------------------


def _environments_root() -> Path:
    root = Path(settings.MARLIN_EVIDENCE_DIR) / "environments"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    # One setup per key at a time on this machine; the others wait, then reuse it.
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def setup_key(*, repository_id: int, commit_sha: str, recipe_digest: str) -> str:
    return evidence.recipe_digest(
        {"repository": repository_id, "commit": commit_sha, "recipe": recipe_digest}
    )[:40]


def prepare_environment(
    *, key: str, setup_commands: list[list[str]], timeout: float, source: Path
) -> SetupOutcome:
    """The environment for `key`, built by running `setup_commands` once (with the network)
    and reused read-only afterwards; a failed build is remembered for a while, not retried
    by every job."""
    root = _environments_root()
    ready = root / key
    failed = root / f"{key}.failed.json"
    with _locked(root / f"{key}.lock"):
        if (ready / READY_MARK).exists():
            meta = json.loads((ready / READY_MARK).read_text())
            return SetupOutcome(ok=True, cached=True, path=ready, duration_ms=0,
                                commands=meta.get("commands", []))  # fmt: skip
        if failed.exists() and time.time() - failed.stat().st_mtime < (
            settings.MARLIN_EVIDENCE_SETUP_RETRY_SECONDS
        ):
            meta = json.loads(failed.read_text())
            return SetupOutcome(ok=False, cached=True, path=None, **meta)
        return _build(ready, failed, setup_commands, timeout, source)


def _build(
    ready: Path, failed: Path, setup_commands: list[list[str]], timeout: float, source: Path
) -> SetupOutcome:
    building = ready.with_name(ready.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(mode=0o755)
    started = time.monotonic()
    commands: list[dict] = []
    try:
        for number, argv in enumerate(setup_commands, start=1):
            remaining = timeout - (time.monotonic() - started)
            if remaining <= 1:
                return _setup_failed(failed, started, commands, "", False,
                                     f"Setup took longer than {timeout:.0f} seconds.")  # fmt: skip
            run = run_command(
                evidence.expand(argv), source=source, env_dir=building, env_writable=True,
                network=True, timeout=remaining,
            )  # fmt: skip
            commands.append({"command": argv, "status": run.status, "duration_ms": run.duration_ms})
            if not run.ok:
                reason = _setup_reason(number, run)
                return _setup_failed(failed, started, commands, run.log, run.log_truncated, reason)
        size = _tree_bytes(building)
        if size > settings.MARLIN_EVIDENCE_ENV_MAX_MB * 1024 * 1024:
            return _setup_failed(
                failed, started, commands, "", False,
                f"Setup left {size // (1024 * 1024)} MB, over the "
                f"{settings.MARLIN_EVIDENCE_ENV_MAX_MB} MB allowed.",
            )  # fmt: skip
        duration_ms = int((time.monotonic() - started) * 1000)
        _write_mark(building, json.dumps({"commands": commands}))
        failed.unlink(missing_ok=True)
        shutil.rmtree(ready, ignore_errors=True)
        building.rename(ready)
        return SetupOutcome(ok=True, cached=False, path=ready, duration_ms=duration_ms,
                            commands=commands)  # fmt: skip
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _write_mark(building: Path, text: str) -> None:
    # Setup could have left a symlink by this name (to /etc/passwd, to Marlin's settings):
    # the root worker replaces it, and never writes through it.
    fd = os.open(building, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        with suppress(FileNotFoundError):
            if stat.S_ISDIR(os.lstat(READY_MARK, dir_fd=fd).st_mode):
                shutil.rmtree(READY_MARK, dir_fd=fd)
            else:
                os.unlink(READY_MARK, dir_fd=fd)
        out = os.open(READY_MARK, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644,
                      dir_fd=fd)  # fmt: skip
        with os.fdopen(out, "w", encoding="utf-8") as handle:
            handle.write(text)
    finally:
        os.close(fd)


def _setup_reason(number: int, run: CommandRun) -> str:
    if run.status == TIMED_OUT:
        return f"Setup command {number} did not finish in time."
    if run.status == OUTPUT_EXCEEDED:
        return f"Setup command {number} wrote too much output and was stopped."
    if run.status == DISK_EXCEEDED:
        return (
            f"Setup command {number} wrote more than {settings.MARLIN_EVIDENCE_ENV_MAX_MB} MB "
            "and was stopped."
        )
    return f"Setup command {number} failed (exit status {run.exit_code})."


def _setup_failed(
    failed: Path, started: float, commands: list[dict], log: str, truncated: bool, reason: str
) -> SetupOutcome:
    meta = {
        "duration_ms": int((time.monotonic() - started) * 1000),
        "log": log,
        "log_truncated": truncated,
        "reason": reason,
        "commands": commands,
    }
    failed.write_text(json.dumps(meta))
    return SetupOutcome(ok=False, cached=False, path=None, **meta)


def _tree_bytes(root: Path) -> int:
    return sandbox.disk_usage([root])


# --- Acceptance tests into a tree ---------------------------------------------------


def write_acceptance_tests(root: Path, tests: list[dict[str, str]]) -> None:
    """Write each test file inside `root`, never through a symlink the change made.

    Every folder on the way is opened with O_NOFOLLOW relative to its parent, so a
    candidate that turned `tests/` into a link to `/etc` gets an EvidenceError, not a write
    outside its tree.
    """
    for test in tests:
        parts = test["path"].split("/")
        if any(part in ("", ".", "..") for part in parts):
            # Validated when stored (evidence.acceptance_tests_clean); checked again here,
            # where a ".." would open the folder above the tree.
            raise EvidenceError(
                f"The acceptance test {test['path']!r} cannot be written: it is not a plain "
                "relative path."
            )
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in parts[:-1]:
                with suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    raise EvidenceError(
                        f"The acceptance test {test['path']} cannot be written: {part} is not "
                        "a folder in this tree."
                    ) from exc
                os.close(fd)
                fd = inner
            leaf = parts[-1]
            with suppress(FileNotFoundError):
                if stat.S_ISDIR(os.lstat(leaf, dir_fd=fd).st_mode):
                    raise EvidenceError(
                        f"The acceptance test {test['path']} cannot be written: it is a folder "
                        "in this tree."
                    )
                os.unlink(leaf, dir_fd=fd)
            out = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644,
                          dir_fd=fd)  # fmt: skip
            with os.fdopen(out, "w", encoding="utf-8") as handle:
                handle.write(test["content"])
        finally:
            os.close(fd)
