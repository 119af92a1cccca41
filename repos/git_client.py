"""Every git operation Marlin performs, through GitPython, with git hardened by its environment.

User text (URLs, refs, paths) is validated before it reaches git, and is always placed after
`--` or `--end-of-options`, so git can never read it as an option.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import git

from marlin.exceptions import ApplicationError


class GitError(ApplicationError):
    """A git operation failed; the message is fit to show a person."""


class UnsafeRepositoryUrl(GitError):
    pass


class GitTimeout(GitError):
    """Reading the repository ran past its time limit: the clone is fine, but too big to read."""


class GitTooLarge(GitError):
    """A transfer would make the clone larger than its size limit."""


# GitHub's own rules: owner is alphanumeric with single hyphens; a name is [A-Za-z0-9._-].
_OWNER_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class TreeEntry:
    path: str
    is_dir: bool
    size: int | None


@dataclass(frozen=True)
class DirEntry:
    """One entry of a directory listing. `size` is None when the blob was never fetched."""

    name: str
    path: str
    kind: str  # "dir", "file", "symlink" or "submodule"
    oid: str
    size: int | None


@dataclass(frozen=True)
class Blob:
    path: str
    oid: str
    size: int
    is_symlink: bool
    data: bytes  # for a symlink: the link's target, never the target's content


@dataclass(frozen=True)
class DirPage:
    """One page of a folder: `entries` from `offset` on, out of `total` in the whole folder."""

    entries: list[DirEntry]
    total: int
    offset: int


@dataclass
class FilesRead:
    """What read_files read; `timed_out` when its deadline stopped it, with `unread` paths left."""

    files: dict[str, bytes]
    timed_out: bool = False
    unread: int = 0


# Control characters and space, and what could smuggle another URL or path past the checks
# below: percent-escapes and backslashes. (A regex: the catalogue import checks every row.)
_FORBIDDEN_IN_CLONE_URL = re.compile(r"[\x00-\x20%\\]")


def _base_and_path(url: str, allowed_bases: list[str]) -> tuple[str, str]:
    """The scheme://host and the path of a URL free of forbidden characters. An address that
    starts with an allowed base and a slash and has no user, query or fragment marker is
    split by hand (urlsplit would give the same parts; a catalogue import checks ~10k rows a
    second); anything else goes through urlsplit."""
    if not any(mark in url for mark in "@?#"):
        for base in allowed_bases:
            if url.startswith(base) and url[len(base) : len(base) + 1] == "/":
                return base, url[len(base) :]
    parts = urlsplit(url)
    if parts.username or parts.password or parts.query or parts.fragment:
        raise UnsafeRepositoryUrl("The repository address may not carry credentials or queries.")
    return f"{parts.scheme}://{parts.netloc}", parts.path


def validate_clone_url(url: str, *, allowed_bases: list[str]) -> str:
    """Return the canonical clone URL, or raise UnsafeRepositoryUrl before git ever sees it."""
    if not isinstance(url, str) or not url or len(url) > 300:
        raise UnsafeRepositoryUrl("The repository address is empty or too long.")
    if _FORBIDDEN_IN_CLONE_URL.search(url):
        raise UnsafeRepositoryUrl("The repository address contains forbidden characters.")
    base, path = _base_and_path(url, allowed_bases)
    if base not in allowed_bases:
        raise UnsafeRepositoryUrl(f"Only repositories on {', '.join(allowed_bases)} can be cloned.")
    segments = path.split("/")
    if len(segments) != 3 or segments[0] != "":
        raise UnsafeRepositoryUrl(f"The repository address must look like {base}/OWNER/NAME.")
    owner, name = segments[1], segments[2].removesuffix(".git")
    if not _OWNER_RE.match(owner) or not _NAME_RE.match(name) or name in {".", ".."}:
        raise UnsafeRepositoryUrl("The repository owner or name is not a valid GitHub name.")
    return f"{base}/{owner}/{name}.git"


_SECRET_NAME_RE = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|_URL$", re.IGNORECASE)


def _scrubbed_secrets() -> dict[str, str]:
    # GitPython starts git with a copy of our environment; blank every secret-looking
    # variable (API keys, database and broker URLs) so git and anything it runs never see it.
    return {name: "" for name in os.environ if _SECRET_NAME_RE.search(name)}


def _git_env(allowed_bases: list[str]) -> dict[str, str]:
    schemes = sorted({urlsplit(b).scheme for b in allowed_bases} & {"https", "http"})
    config = {
        "core.hooksPath": "/dev/null",
        # A command named in the clone's own config would run whenever git reads the index.
        "core.fsmonitor": "false",
        "protocol.allow": "never",
        "http.followRedirects": "false",
        "submodule.recurse": "false",
        "credential.helper": "",
        # Check every object a clone or fetch (a lazy blob fetch too) receives: git's fsck
        # refuses trees with a `.git`, `..` or otherwise dangerous entry, which a checkout
        # or an archive of the shared clone would otherwise write out.
        "transfer.fsckObjects": "true",
        "fetch.fsckObjects": "true",
        **{f"protocol.{scheme}.allow": "always" for scheme in schemes},
    }
    env = {
        **_scrubbed_secrets(),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "GCM_INTERACTIVE": "never",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_ALLOW_PROTOCOL": ":".join(schemes),
        "GIT_CONFIG_COUNT": str(len(config)),
    }
    for index, (key, value) in enumerate(config.items()):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


@contextmanager
def _exclusive_lock(dest: Path) -> Iterator[None]:
    # Two jobs must never clone or fetch the same cache at once; the lock file sits beside it.
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.with_name(dest.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(args: list[str], *, cwd: Path, env: dict[str, str], timeout: int) -> str:
    try:
        return git.Git(str(cwd)).execute(
            ["git", *args], env=env, kill_after_timeout=timeout, with_extended_output=False
        )
    except git.GitCommandError as exc:
        raise GitError(_describe(args[0], exc.stderr, exc.status)) from exc


def _describe(command: str, stderr: str | bytes | None, status: object) -> str:
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    text = (stderr or "").strip().removeprefix("stderr:").strip(" '\n")
    lines = [line for line in text.splitlines() if line.strip()]
    return f"git {command} failed: {lines[-1] if lines else f'exit status {status}'}"


def _disk_usage(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


# "error: object <sha>: hasDotgit: contains '.git'": what fsck prints for an object it refuses.
_FSCK_ERROR_RE = re.compile(r"error: object [0-9a-f]+: (\w+): ([^\n]*)")


def _fsck_refusal(stderr: str | bytes) -> str:
    """The person-readable reason when git's fsck refused a received object, else ""."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    found = _FSCK_ERROR_RE.search(stderr)
    if not found:
        return ""
    kind = "a path" if found.group(1).startswith(("has", "fullPath", "emptyName")) else "an object"
    return f"The repository contains {kind} git refuses ({found.group(1)}: {found.group(2)})."


def _run_limited(
    args: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: int,
    watch: Path,
    max_bytes: int,
    stdin: bytes | None = None,
) -> None:
    """Run git, killing it when it outlives `timeout` or `watch` grows past `max_bytes`.

    GitPython's own timeout does not apply to long transfers we stream, so we poll.
    """
    baseline = _disk_usage(watch) if watch.exists() else 0
    proc = git.Git(str(cwd)).execute(
        ["git", *args], env=env, as_process=True,
        istream=subprocess.PIPE if stdin is not None else None,
    )  # fmt: skip
    popen = proc.proc
    if stdin is not None and popen.stdin:
        popen.stdin.write(stdin)
        popen.stdin.close()
    deadline = time.monotonic() + timeout
    try:
        while popen.poll() is None:
            if time.monotonic() > deadline:
                raise GitError(
                    f"git {args[0]} stopped: the repository took longer than {timeout} s."
                )
            if watch.exists() and _disk_usage(watch) - baseline > max_bytes:
                raise GitTooLarge(
                    f"git {args[0]} stopped: the repository is larger than "
                    f"{max_bytes // (1024 * 1024)} MiB."
                )
            time.sleep(0.2)
    finally:
        # Also on the job's soft time limit: git must not outlive us.
        if popen.poll() is None:
            popen.kill()
            popen.wait()
    stderr = popen.stderr.read() if popen.stderr else b""
    if popen.returncode != 0:
        raise GitError(_fsck_refusal(stderr) or _describe(args[0], stderr, popen.returncode))
    # A fast transfer can finish between two polls: the limit holds for the result too.
    if watch.exists() and _disk_usage(watch) - baseline > max_bytes:
        raise GitTooLarge(
            f"git {args[0]} stopped: the repository is larger than {max_bytes // (1024 * 1024)} MiB."
        )


def clone_or_fetch(
    url: str,
    dest: Path,
    *,
    allowed_bases: list[str],
    timeout: int,
    max_bytes: int,
    blob_limit: int,
) -> None:
    """Make `dest` a bare partial clone of `url` that is up to date.

    Blobs over `blob_limit` are left on the server (fetched only if someone reads them).
    A new clone is made in a temporary directory and moved into place only when complete,
    so a failed, killed or oversized clone never leaves a half-written cache behind.
    """
    safe_url = validate_clone_url(url, allowed_bases=allowed_bases)
    env = _git_env(allowed_bases)
    blob_filter = f"--filter=blob:limit={blob_limit}"
    with _exclusive_lock(dest):
        if (dest / "HEAD").exists():
            _run_limited(
                ["fetch", "--quiet", "--prune", blob_filter, "--", safe_url,
                 "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
                cwd=dest, env=env, timeout=timeout, watch=dest, max_bytes=max_bytes,
            )  # fmt: skip
            return
        tmp = Path(tempfile.mkdtemp(prefix=".clone-", dir=dest.parent))
        try:
            _run_limited(
                ["clone", "--quiet", "--bare", blob_filter, "--no-recurse-submodules", "--",
                 safe_url, str(tmp / "repo.git")],
                cwd=dest.parent, env=env, timeout=timeout, watch=tmp, max_bytes=max_bytes,
            )  # fmt: skip
            os.replace(tmp / "repo.git", dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _open(dest: Path, allowed_bases: list[str]) -> git.Repo:
    try:
        repo = git.Repo(str(dest))
    except (git.NoSuchPathError, git.InvalidGitRepositoryError) as exc:
        raise GitError("The repository's copy on this server is missing; clone it again.") from exc
    # Reading a blob of a partial clone fetches it lazily: that fetch needs the same hardening.
    repo.git.update_environment(**_git_env(allowed_bases))
    return repo


def resolve_commit(dest: Path, ref: str, *, allowed_bases: list[str]) -> str:
    """The full sha of the commit a branch, tag or sha names."""
    if not ref or ref.startswith("-") or len(ref) > 255 or any(ord(c) < 0x21 for c in ref):
        raise GitError("That is not a valid branch, tag or commit name.")
    repo = _open(dest, allowed_bases)
    try:
        sha = repo.git.rev_parse("--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    except git.GitCommandError as exc:
        raise GitError(f"The repository has no branch, tag or commit named {ref!r}.") from exc
    if not _SHA_RE.match(sha):
        raise GitError(f"The repository has no branch, tag or commit named {ref!r}.")
    return sha


def _safe_path(path: str) -> str:
    """A repository-relative path with no way out: no `..`, `.`, empty or absolute parts."""
    if not path or "\x00" in path or "\\" in path or len(path) > 4096:
        raise GitError("That file path is not valid.")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise GitError("That file path is not valid.")
    return path


def list_refs(dest: Path, *, allowed_bases: list[str]) -> dict[str, list[str]]:
    """Branch and tag names of the cached clone, for the contractor to pin."""
    repo = _open(dest, allowed_bases)
    output = repo.git.for_each_ref("--format=%(refname)", "refs/heads", "refs/tags")
    refs: dict[str, list[str]] = {"branches": [], "tags": []}
    for ref in output.splitlines():
        if ref.startswith("refs/heads/"):
            refs["branches"].append(ref.removeprefix("refs/heads/"))
        elif ref.startswith("refs/tags/"):
            refs["tags"].append(ref.removeprefix("refs/tags/"))
    return refs


# Reads without a caller's deadline still end: a web request must not hang on git.
READ_TIMEOUT_SECONDS = 60.0
# A fetch of blobs a partial clone left out, bounded like a clone.
FETCH_TIMEOUT_SECONDS = 300
# How many paths the first round of plumbing (present check, sizes, contents) handles:
# enough to fill a prompt in one round, few enough that a deadline is checked often.
_READ_CHUNK = 256


def _plumbing(
    dest: Path, args: list[str], *, allowed_bases: list[str], stdin: bytes = b"", timeout: float
) -> bytes:
    """One git plumbing process on the shared clone; its stdout.

    GIT_DIR is explicit, so git never searches parent folders for another repository, and
    pathspecs are literal, so a path is never read as a glob or a `:(magic)` pathspec.
    """
    if not (dest / "HEAD").exists():
        raise GitError("The repository's copy on this server is missing; clone it again.")
    env = {**os.environ, **_git_env(allowed_bases), "GIT_DIR": str(dest)}
    env["GIT_LITERAL_PATHSPECS"] = "1"
    if timeout <= 0:
        raise GitTimeout(
            f"Reading the repository took too long: no time was left for git {args[0]}."
        )
    try:
        done = subprocess.run(
            ["git", *args], cwd=dest, env=env, input=stdin, capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise GitTimeout(
            f"Reading the repository took too long: git {args[0]} ran past {timeout:g} s."
        ) from exc
    if done.returncode != 0:
        raise GitError(_describe(args[0], done.stderr, done.returncode))
    return done.stdout


def _remaining(deadline: float | None) -> float:
    if deadline is None:
        return READ_TIMEOUT_SECONDS
    return deadline - time.monotonic()


class _Record(NamedTuple):
    mode: str
    kind: str  # git's object type: "blob", "tree" or "commit"
    oid: str
    path: str


def _records(output: bytes, *, prefix: str = "") -> list[_Record]:
    """Parse `ls-tree -z` output; `prefix` is the folder that was listed.

    Tuples and one decode: a folder of 100k entries is parsed in a fraction of a second.
    """
    lead = f"{prefix}/" if prefix else ""
    records = []
    for raw in output.decode("utf-8", errors="replace").split("\x00"):
        if raw:
            meta, _, name = raw.partition("\t")
            mode, kind, oid = meta.split(" ")
            records.append(_Record(mode, kind, oid, lead + name))
    return records


def _present(
    dest: Path, oids: list[str], *, allowed_bases: list[str], deadline: float | None
) -> set[str]:
    """Which of these blobs the partial clone holds, without fetching any that it does not.

    `--missing=print` turns git's lazy fetch off; `--ignore-missing` skips absent blobs.
    """
    if not oids:
        return set()
    output = _plumbing(
        dest,
        ["rev-list", "--objects", "--no-walk", "--missing=print", "--ignore-missing", "--stdin"],
        allowed_bases=allowed_bases,
        stdin="".join(f"{oid}\n" for oid in oids).encode(),
        timeout=_remaining(deadline),
    )
    return {line[:40] for line in output.decode().splitlines() if _SHA_RE.match(line[:40])}


def _sizes(
    dest: Path, oids: list[str], *, allowed_bases: list[str], deadline: float | None
) -> dict[str, int]:
    """Sizes of blobs the clone holds (check `_present` first: a missing one would be fetched)."""
    if not oids:
        return {}
    output = _plumbing(
        dest,
        ["cat-file", "--batch-check=%(objectname) %(objectsize)"],
        allowed_bases=allowed_bases,
        stdin="".join(f"{oid}\n" for oid in oids).encode(),
        timeout=_remaining(deadline),
    )
    sizes = {}
    for line in output.decode().splitlines():
        oid, _, size = line.partition(" ")
        if size.isdigit():
            sizes[oid] = int(size)
    return sizes


def _contents(
    dest: Path, oids: list[str], *, allowed_bases: list[str], deadline: float | None
) -> dict[str, bytes]:
    """The bytes of blobs the clone holds, in one `cat-file --batch`."""
    if not oids:
        return {}
    output = _plumbing(
        dest,
        ["cat-file", "--batch"],
        allowed_bases=allowed_bases,
        stdin="".join(f"{oid}\n" for oid in oids).encode(),
        timeout=_remaining(deadline),
    )
    found: dict[str, bytes] = {}
    offset = 0
    while offset < len(output):
        end = output.index(b"\n", offset)
        header = output[offset:end].decode().split(" ")
        offset = end + 1
        if len(header) != 3:  # "<oid> missing"
            continue
        size = int(header[2])
        found[header[0]] = output[offset : offset + size]
        offset += size + 1
    return found


def _entry(
    dest: Path, sha: str, path: str, *, allowed_bases: list[str], deadline: float | None = None
) -> _Record | None:
    """The tree entry at `path` (one `ls-tree`), or None when the commit has no such path."""
    safe = _safe_path(path)
    output = _plumbing(
        dest,
        ["ls-tree", "-z", "--full-tree", "--end-of-options", sha, "--", safe],
        allowed_bases=allowed_bases,
        timeout=_remaining(deadline),
    )
    for record in _records(output):
        if record.path == safe:
            return record
    return None


def path_kind(dest: Path, sha: str, path: str, *, allowed_bases: list[str]) -> str:
    """The kind of the entry at `path` ("dir", "file", "symlink" or "submodule"), from one
    `ls-tree`; GitError when the commit has no such path."""
    if not _SHA_RE.match(sha):
        raise GitError("That is not a commit id.")
    record = _entry(dest, sha, path, allowed_bases=allowed_bases)
    if record is None:
        raise GitError(f"No file or folder {path!r} at this commit.")
    return _kind(record)


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    subject: str  # the first line of the message
    committed_at: datetime  # aware, in the committer's own offset


def commit_info(
    dest: Path, sha: str, *, allowed_bases: list[str], timeout: float = READ_TIMEOUT_SECONDS
) -> CommitInfo:
    """The first line of a commit's message and its committer date, from one `cat-file`."""
    if not _SHA_RE.match(sha):
        raise GitError("That is not a commit id.")
    raw = _plumbing(dest, ["cat-file", "commit", sha], allowed_bases=allowed_bases, timeout=timeout)
    # Headers end at the first empty line; a signature's continuation lines start with a space.
    headers, _, message = raw.partition(b"\n\n")
    for line in headers.split(b"\n"):
        if not line.startswith(b"committer "):
            continue
        try:
            # "committer Name <email> 1700000000 +0130"
            seconds, offset = line.decode("utf-8", errors="replace").rsplit(" ", 2)[1:]
            sign = -1 if offset.startswith("-") else 1
            shift = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])) * sign
            committed_at = datetime.fromtimestamp(int(seconds), tz=dt_timezone(shift))
        except (ValueError, OverflowError, OSError) as exc:
            raise GitError(f"The commit {sha[:12]} has an unreadable date.") from exc
        subject = message.decode("utf-8", errors="replace").strip().split("\n", 1)[0]
        return CommitInfo(sha=sha, subject=subject.strip(), committed_at=committed_at)
    raise GitError(f"The commit {sha[:12]} names no committer.")


def _kind(record: _Record) -> str:
    if record.mode == "120000":
        return "symlink"
    return {"tree": "dir", "commit": "submodule"}.get(record.kind, "file")


def list_directory(
    dest: Path,
    sha: str,
    path: str,
    *,
    allowed_bases: list[str],
    offset: int = 0,
    limit: int | None = None,
) -> DirPage:
    """One page of a directory's entries at the commit: folders first, then by name.

    One `ls-tree` lists the folder; only the page's blobs are then looked at (which the
    clone holds, and their sizes), so a page costs the same in a folder of 100k entries.
    Never fetches a blob: sizes of blobs the partial clone left out are None.
    """
    if not _SHA_RE.match(sha):
        raise GitError("That is not a commit id.")
    treeish = f"{sha}:{_safe_path(path)}" if path else sha
    try:
        output = _plumbing(
            dest, ["ls-tree", "-z", "--end-of-options", treeish],
            allowed_bases=allowed_bases, timeout=READ_TIMEOUT_SECONDS,
        )  # fmt: skip
    except GitTimeout:
        raise
    except GitError as exc:
        raise GitError(f"No folder {path!r} at this commit.") from exc
    # Sort cheap tuples and parse only the page: "<mode:6> <kind> <oid>\t<name>" records.
    rows = [
        (raw[7:11] != "tree", raw.partition("\t")[2].lower(), raw)
        for raw in output.decode("utf-8", errors="replace").split("\x00")
        if raw
    ]
    rows.sort()
    chosen = rows[offset : offset + limit] if limit is not None else rows[offset:]
    page = _records("\x00".join(raw for _, _, raw in chosen).encode(), prefix=path)
    blobs = [r.oid for r in page if r.kind == "blob"]
    present = _present(dest, blobs, allowed_bases=allowed_bases, deadline=None)
    sizes = _sizes(dest, [o for o in blobs if o in present], allowed_bases=allowed_bases,
                   deadline=None)  # fmt: skip
    entries = [
        DirEntry(
            name=r.path.rpartition("/")[2],
            path=r.path,
            kind=_kind(r),
            oid=r.oid,
            size=sizes.get(r.oid) if r.kind == "blob" else None,
        )  # fmt: skip
        for r in page
    ]
    return DirPage(entries=entries, total=len(rows), offset=offset)


def read_blob(dest: Path, sha: str, path: str, *, allowed_bases: list[str], max_bytes: int) -> Blob:
    """One file at the commit. A symlink yields its target text; it is never followed.

    A file over `max_bytes` is not read (nor fetched): its Blob has empty data.
    """
    if not _SHA_RE.match(sha):
        raise GitError("That is not a commit id.")
    record = _entry(dest, sha, path, allowed_bases=allowed_bases)
    if record is None:
        raise GitError(f"No file {path!r} at this commit.")
    if record.kind != "blob":
        raise GitError(f"{path!r} is not a file.")
    is_symlink = record.mode == "120000"
    if not _present(dest, [record.oid], allowed_bases=allowed_bases, deadline=None):
        return Blob(path=record.path, oid=record.oid, size=max_bytes + 1, is_symlink=False,
                    data=b"")  # fmt: skip
    size = _sizes(dest, [record.oid], allowed_bases=allowed_bases, deadline=None)[record.oid]
    if size > max_bytes:
        return Blob(path=record.path, oid=record.oid, size=size, is_symlink=is_symlink, data=b"")
    data = _contents(dest, [record.oid], allowed_bases=allowed_bases, deadline=None)[record.oid]
    return Blob(path=record.path, oid=record.oid, size=size, is_symlink=is_symlink, data=data)


def list_tree(
    dest: Path, sha: str, *, allowed_bases: list[str], timeout: float = READ_TIMEOUT_SECONDS
) -> list[TreeEntry]:
    """Every file of the commit, recursively, without fetching any blob (one `ls-tree -r`).

    Raises GitTimeout when listing takes longer than `timeout` seconds.
    """
    return [
        TreeEntry(path=path, is_dir=False, size=None)
        for path in _blob_index(dest, sha, allowed_bases=allowed_bases, timeout=timeout)
    ]


def list_paths(
    dest: Path, sha: str, *, allowed_bases: list[str], timeout: float = READ_TIMEOUT_SECONDS
) -> list[str]:
    """The paths list_tree lists, as plain strings (no object per file: trees can be huge)."""
    return list(_blob_index(dest, sha, allowed_bases=allowed_bases, timeout=timeout))


# The last few commits' full listings (path -> blob id of every regular file). A commit's
# tree never changes, so building a prompt lists a 100k-file tree once, not twice.
_BLOB_INDEXES: dict[tuple[str, str], dict[str, str]] = {}
_BLOB_INDEXES_KEPT = 2


def _blob_index(
    dest: Path, sha: str, *, allowed_bases: list[str], timeout: float
) -> dict[str, str]:
    """path -> blob id of every regular file of the commit, in tree order (one `ls-tree -r`)."""
    key = (str(dest), sha)
    index = _BLOB_INDEXES.get(key)
    if index is not None:
        return index
    output = _plumbing(
        dest, ["ls-tree", "-r", "-z", "--full-tree", "--end-of-options", sha],
        allowed_bases=allowed_bases, timeout=timeout,
    )  # fmt: skip
    index = {}
    for raw in output.decode("utf-8", errors="replace").split("\x00"):
        # "<mode:6> blob <oid:40>\t<path>"; symlinks (120000) and submodules are left out.
        if raw[7:11] == "blob" and not raw.startswith("120000"):
            index[raw[53:]] = raw[12:52]
    if not _SHA_RE.match(sha):
        return index  # a ref, not a commit id: what it names can move, so it is not kept
    while len(_BLOB_INDEXES) >= _BLOB_INDEXES_KEPT:
        _BLOB_INDEXES.pop(next(iter(_BLOB_INDEXES)), None)
    _BLOB_INDEXES[key] = index
    return index


def read_file(
    dest: Path, sha: str, path: str, *, allowed_bases: list[str], max_bytes: int
) -> bytes:
    """The bytes of one regular file at the commit; symlinks are never followed.

    A blob the partial clone left out is larger than any file we read: refused unfetched.
    """
    safe = _safe_path(path)
    files = read_files(dest, sha, [safe], allowed_bases=allowed_bases, budget_bytes=max_bytes).files
    if safe not in files:
        raise GitError(f"{path!r} is not a regular file of at most {max_bytes} bytes here.")
    return files[safe]


# Up to this many paths are looked up with pathspecs; more, and one `ls-tree -r` is cheaper
# (git matches every entry of a folder against every pathspec).
_PATHSPEC_LOOKUPS = 64


def _regular_blobs(
    dest: Path, sha: str, paths: list[str], *, allowed_bases: list[str], deadline: float | None
) -> dict[str, str]:
    """path -> blob id for those of `paths` that are regular files; invalid paths are skipped.

    A few paths are looked up with (literal) pathspecs, which pass _safe_path first; many are
    matched against the whole listing, where only paths git itself lists can match.
    """
    if len(paths) <= _PATHSPEC_LOOKUPS:
        safe = []
        for path in paths:
            try:
                safe.append(_safe_path(path))
            except GitError:
                continue
        if not safe:
            return {}
        args = ["ls-tree", "-z", "--full-tree", "--end-of-options", sha, "--", *safe]
        output = _plumbing(dest, args, allowed_bases=allowed_bases, timeout=_remaining(deadline))
        wanted = set(safe)
        return {
            r.path: r.oid
            for r in _records(output)
            if r.kind == "blob" and r.mode != "120000" and r.path in wanted
        }
    index = _blob_index(dest, sha, allowed_bases=allowed_bases, timeout=_remaining(deadline))
    return {path: index[path] for path in paths if path in index}


def read_files(
    dest: Path,
    sha: str,
    paths: list[str],
    *,
    allowed_bases: list[str],
    budget_bytes: int,
    deadline: float | None = None,
) -> FilesRead:
    """As many of `paths` (in order) as fit in `budget_bytes`, and in time when a `deadline`
    (a `time.monotonic()` value) is given: then reading stops there and says so.

    Skips what is not a regular file, an invalid or missing path, and any blob the partial
    clone left out (never fetched here); stops once the budget is spent. The cost grows
    with the paths read, not with the tree: one `ls-tree`, then three plumbing processes
    for each round of paths (256, then twice as many each round).
    """
    if not _SHA_RE.match(sha):
        raise GitError("That is not a commit id.")
    result = FilesRead(files={})
    safe = list(dict.fromkeys(paths))
    try:
        regular = _regular_blobs(dest, sha, safe, allowed_bases=allowed_bases, deadline=deadline)
    except GitTimeout:
        if deadline is None:
            raise
        return FilesRead(files={}, timed_out=True, unread=len(safe))
    wanted = [(path, regular[path]) for path in safe if path in regular]
    remaining = budget_bytes
    start, size = 0, _READ_CHUNK
    while start < len(wanted) and remaining > 0:
        chunk = wanted[start : start + size]
        try:
            oids = list(dict.fromkeys(oid for _, oid in chunk))
            present = _present(dest, oids, allowed_bases=allowed_bases, deadline=deadline)
            sizes = _sizes(dest, [o for o in oids if o in present], allowed_bases=allowed_bases,
                           deadline=deadline)  # fmt: skip
            chosen = []
            for path, oid in chunk:
                if remaining <= 0:
                    break
                if oid in sizes and sizes[oid] <= remaining:
                    chosen.append((path, oid))
                    remaining -= sizes[oid]
            data = _contents(dest, list(dict.fromkeys(o for _, o in chosen)),
                             allowed_bases=allowed_bases, deadline=deadline)  # fmt: skip
        except GitTimeout:
            if deadline is None:
                raise
            result.timed_out = True
            result.unread = len(wanted) - start
            break
        for path, oid in chosen:
            result.files[path] = data[oid]
        # Many small files: each round twice as large, so rounds stay few.
        start, size = start + size, min(size * 2, 16 * _READ_CHUNK)
    return result


def create_bare_repository(
    dest: Path, files: dict[str, str], *, message: str, symlinks: dict[str, str] | None = None
) -> str:
    """Make a bare repository at `dest` whose one commit on `main` holds `files`; returns its sha.

    `symlinks` maps a path to a link target, stored verbatim (it may point anywhere).
    Used to build the demo's repositories and test fixtures, served over HTTP like GitHub's.
    """
    identity = {"NAME": "Marlin Demo", "EMAIL": "demo@marlin.invalid"}
    # Local-only work on a directory we create: no remote protocols are involved.
    env = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_TERMINAL_PROMPT": "0"}
    env |= {f"GIT_{who}_{key}": v for who in ("AUTHOR", "COMMITTER") for key, v in identity.items()}
    with tempfile.TemporaryDirectory(prefix="marlin-repo-") as work:
        repo = git.Repo.init(work, initial_branch="main")
        repo.git.update_environment(**env)
        for rel, text in files.items():
            target = Path(work) / _safe_path(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        for rel, link_target in (symlinks or {}).items():
            link = Path(work) / _safe_path(rel)
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(link_target, link)
        repo.git.add("--all")
        repo.git.commit("-m", message, "--no-verify")
        sha = repo.head.commit.hexsha
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        repo.git.clone("--bare", "--", work, str(dest))
    return sha


@contextmanager
def temporary_worktree(
    dest: Path,
    sha: str,
    *,
    allowed_bases: list[str],
    max_bytes: int | None = None,
    timeout: int = FETCH_TIMEOUT_SECONDS,
) -> Iterator[Path]:
    """A private checkout of `sha`, always removed afterwards.

    Blobs the partial clone left out are fetched first, in one transfer that counts toward
    the clone's `max_bytes` (GitTooLarge past it, before anything is checked out).

    git itself writes the files (`read-tree` into a private index, then `checkout-index`),
    so symlinks stay symlinks whatever they point to, and git never writes through one.
    The baseline repository the diff is taken against sits beside the checkout, not in
    it: code run in the checkout can reach neither the shared clone nor the git metadata
    (hooks, filters, fsmonitor) that worktree_diff later runs with.
    """
    if not _SHA_RE.match(sha):
        raise GitError("That is not a commit id.")
    repo = _open(dest, allowed_bases)
    missing = _plumbing(
        dest, ["rev-list", "--objects", "--quiet", "--missing=print", "--no-walk",
               "--end-of-options", sha],
        allowed_bases=allowed_bases, timeout=READ_TIMEOUT_SECONDS,
    )  # fmt: skip
    _fetch_missing(
        dest, [line[1:41] for line in missing.decode().splitlines() if line.startswith("?")],
        allowed_bases=allowed_bases, max_bytes=max_bytes, timeout=timeout,
    )  # fmt: skip
    parent = Path(tempfile.mkdtemp(prefix=WORKTREE_PREFIX))
    worktree = parent / "checkout"
    try:
        worktree.mkdir()
        # A private index: the shared clone's own state is never touched. Blobs the
        # partial clone left out are fetched with the clone's hardened environment.
        env = {
            **_git_env(allowed_bases),
            "GIT_DIR": str(repo.git_dir),
            "GIT_WORK_TREE": str(worktree),
            "GIT_INDEX_FILE": str(parent / "export.index"),
        }
        try:
            export = git.Git(str(worktree))
            export.execute(["git", "read-tree", "--end-of-options", sha], env=env)
            export.execute(["git", "checkout-index", "--all"], env=env)
        except git.GitCommandError as exc:
            raise GitError(_describe("checkout", exc.stderr, exc.status)) from exc
        (parent / "export.index").unlink()
        runner, env = _baseline(worktree)
        git.Git(str(parent)).execute(
            ["git", "init", "--quiet", "--bare", "baseline.git"], env=_git_env([])
        )
        runner.execute(["git", "add", "--all", "--force"], env=env)
        runner.execute(["git", "commit", "--quiet", "--allow-empty", "--no-verify", "-m", "base"],
                       env=env)  # fmt: skip
        yield worktree
    finally:
        shutil.rmtree(parent, ignore_errors=True)


WORKTREE_PREFIX = "marlin-worktree-"

_BASELINE_IDENTITY = {
    "GIT_AUTHOR_NAME": "Marlin",
    "GIT_AUTHOR_EMAIL": "marlin@marlin.invalid",
    "GIT_COMMITTER_NAME": "Marlin",
    "GIT_COMMITTER_EMAIL": "marlin@marlin.invalid",
}


def _baseline(worktree: Path) -> tuple[git.Git, dict[str, str]]:
    """git run on the checkout with the baseline repository beside it as its git dir.

    GIT_DIR and GIT_WORK_TREE are explicit, so a `.git` the agent made in the checkout is
    never read; git also never adds a path named `.git`.
    """
    env = {
        **_git_env([]),
        **_BASELINE_IDENTITY,
        "GIT_DIR": str(worktree.parent / "baseline.git"),
        "GIT_WORK_TREE": str(worktree),
    }
    return git.Git(str(worktree)), env


def apply_to_worktree(worktree: Path, diff: str) -> None:
    """Apply a unified diff to a checkout (used to replay the conversation's change so far)."""
    if not diff.strip():
        return
    patch = worktree.parent / "base.diff"
    patch.write_text(diff)
    runner, env = _baseline(worktree)
    try:
        runner.execute(["git", "apply", "--whitespace=nowarn", str(patch)], env=env)
    except git.GitCommandError as exc:
        raise GitError(_describe("apply", exc.stderr, exc.status)) from exc


def worktree_diff(worktree: Path, sha: str) -> str:
    """Everything changed in the checkout (new files too) as a unified diff against `sha`.

    The checkout's baseline commit holds exactly `sha`'s tree, so diffing against it is
    diffing against `sha`.
    """
    runner, env = _baseline(worktree)
    try:
        runner.execute(["git", "add", "--all"], env=env)
        return runner.execute(
            ["git", "diff", "--cached", "--no-color", "--no-ext-diff", "--no-renames", "HEAD"],
            env=env,
            strip_newline_in_stdout=False,
        )
    except git.GitCommandError as exc:
        raise GitError(_describe("diff", exc.stderr, exc.status)) from exc


def check_patch(
    dest: Path,
    sha: str,
    diff: str,
    *,
    allowed_bases: list[str],
    max_bytes: int | None = None,
    timeout: int = FETCH_TIMEOUT_SECONDS,
) -> str:
    """Whether `diff` applies cleanly to `sha`: "" if it does, else git's reason.

    Uses a private index file, so the shared clone's state is never touched. Blobs of the
    files it changes that the partial clone left out are fetched first, within `max_bytes`.
    """
    if not _SHA_RE.match(sha):
        raise GitError("That is not a commit id.")
    repo = _open(dest, allowed_bases)
    with tempfile.TemporaryDirectory(prefix="marlin-apply-") as tmp:
        index = Path(tmp) / "index"
        patch = Path(tmp) / "change.diff"
        patch.write_text(diff)
        env = {"GIT_INDEX_FILE": str(index)}
        try:
            touched = repo.git.execute(
                ["git", "apply", "--numstat", "-z", str(patch)], strip_newline_in_stdout=False
            )
        except git.GitCommandError as exc:
            return _describe("apply", exc.stderr, exc.status).removeprefix("git apply failed: ")
        # "added<TAB>deleted<TAB>path" records; a rename's two paths follow an empty one.
        paths = []
        for record in touched.split("\x00"):
            try:
                paths.append(_safe_path(record.rpartition("\t")[2]))
            except GitError:
                continue  # a new file's /dev/null, or a path git apply refuses below
        blobs = _regular_blobs(dest, sha, paths, allowed_bases=allowed_bases, deadline=None)
        oids = list(dict.fromkeys(blobs.values()))
        present = _present(dest, oids, allowed_bases=allowed_bases, deadline=None)
        _fetch_missing(
            dest, [o for o in oids if o not in present],
            allowed_bases=allowed_bases, max_bytes=max_bytes, timeout=timeout,
        )  # fmt: skip
        try:
            repo.git.execute(["git", "read-tree", sha], env=env)
            repo.git.execute(["git", "apply", "--cached", "--check", str(patch)], env=env)
        except git.GitCommandError as exc:
            return _describe("apply", exc.stderr, exc.status).removeprefix("git apply failed: ")
    return ""


def _fetch_missing(
    dest: Path, oids: list[str], *, allowed_bases: list[str], max_bytes: int | None, timeout: int
) -> None:
    """Fetch blobs the partial clone left out in one transfer, which counts toward the
    clone's size limit: the clone with them may not grow past `max_bytes` (None: no limit).

    git would otherwise fetch them lazily, one by one, with no limit on what they add.
    Holds the clone's lock, so a refresh never runs alongside; a transfer past the limit
    leaves nothing behind, whole or partial.
    """
    if not oids:
        return
    env = _git_env(allowed_bases)
    # As git's own lazy fetch: name the objects, negotiate nothing.
    count = int(env["GIT_CONFIG_COUNT"])
    env |= {
        f"GIT_CONFIG_KEY_{count}": "fetch.negotiationAlgorithm",
        f"GIT_CONFIG_VALUE_{count}": "noop",
        "GIT_CONFIG_COUNT": str(count + 1),
        "GIT_DIR": str(dest),
    }
    packs = dest / "objects" / "pack"
    with _exclusive_lock(dest):
        used = _disk_usage(dest)
        limit = max_bytes if max_bytes is not None else 2**62
        before = set(packs.iterdir()) if packs.is_dir() else set()
        try:
            if used >= limit:
                raise GitTooLarge("The clone is already at its size limit.")
            _run_limited(
                ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                 "--recurse-submodules=no", "--filter=blob:none", "--stdin", "origin"],
                cwd=dest, env=env, timeout=timeout, watch=dest, max_bytes=limit - used,
                stdin="".join(f"{oid}\n" for oid in oids).encode(),
            )  # fmt: skip
        except GitTooLarge as exc:
            # A fetch from the promisor remote always keeps its pack: removing what it added
            # (or left half-written) returns the clone to its size before. Only fetches
            # holding this lock write packs, so nothing else is removed.
            for leftover in set(packs.iterdir()) - before:
                leftover.unlink(missing_ok=True)
            raise GitTooLarge(
                f"The repository's large files were not fetched: with them, its copy on this "
                f"server would be larger than the {limit // (1024 * 1024)} MiB clone limit "
                f"(MARLIN_CLONE_MAX_MB)."
            ) from exc


# Comparing two changes (tasks.ab_diff) happens in a web request; the plumbing is local, so
# this bound is generous.
PATCHED_TREES_TIMEOUT_SECONDS = min(READ_TIMEOUT_SECONDS, 30.0)


class PatchDoesNotApply(GitError):
    def __init__(self, slot: str, reason: str) -> None:
        super().__init__(f"Candidate {slot}'s change does not apply to the pinned commit: {reason}")
        self.slot = slot


def diff_of_patched_trees(dest: Path, sha: str, patch_a: str, patch_b: str) -> str:
    """`git diff-tree -p` between `sha` with `patch_a` applied and `sha` with `patch_b` applied.

    Raises PatchDoesNotApply naming the side git refused, GitError otherwise. Writes only to
    a temporary directory: the index and the new objects are private (GIT_OBJECT_DIRECTORY),
    the clone's objects are borrowed through GIT_ALTERNATE_OBJECT_DIRECTORIES. No network:
    a blob the partial clone lacks is an error, not a fetch (each change was checked, and
    its blobs fetched, when it was generated).
    """
    if not _SHA_RE.match(sha):
        raise GitError("That is not a commit id.")
    if not (dest / "HEAD").exists():
        raise GitError("The repository's copy on this server is missing.")
    deadline = time.monotonic() + PATCHED_TREES_TIMEOUT_SECONDS
    with tempfile.TemporaryDirectory(prefix="marlin-ab-") as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "objects").mkdir()
        config = {
            "core.hooksPath": "/dev/null",
            "core.fsmonitor": "false",
            "protocol.allow": "never",
            "credential.helper": "",
        }
        # A minimal environment, not ours: git sees no secret and no user configuration.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp),
            "LANG": "C",
            "GIT_DIR": str(dest),
            "GIT_OBJECT_DIRECTORY": str(tmp / "objects"),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(dest / "objects"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_COUNT": str(len(config)),
        }
        for index, (name, value) in enumerate(config.items()):
            env[f"GIT_CONFIG_KEY_{index}"] = name
            env[f"GIT_CONFIG_VALUE_{index}"] = value

        def git(args: list[str], *, index: Path | None = None) -> str:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GitTimeout("Comparing the two results took too long.")
            run_env = {**env, **({"GIT_INDEX_FILE": str(index)} if index else {})}
            try:
                done = subprocess.run(
                    ["git", *args], cwd=tmp, env=run_env, capture_output=True, timeout=remaining
                )
            except subprocess.TimeoutExpired as exc:
                raise GitTimeout("Comparing the two results took too long.") from exc
            if done.returncode != 0:
                lines = done.stderr.decode(errors="replace").strip().splitlines()
                raise GitError(f"git {args[0]} failed: {lines[-1] if lines else done.returncode}")
            return done.stdout.decode("utf-8", errors="replace")

        trees = []
        for slot, patch in (("A", patch_a), ("B", patch_b)):
            index = tmp / f"{slot}.index"
            git(["read-tree", "--end-of-options", sha], index=index)
            if patch.strip():
                (tmp / f"{slot}.diff").write_text(patch)
                try:
                    git(["apply", "--cached", "--whitespace=nowarn", f"{slot}.diff"], index=index)
                except GitTimeout:
                    raise
                except GitError as exc:
                    raise PatchDoesNotApply(
                        slot, exc.message.removeprefix("git apply failed: ")
                    ) from exc
            trees.append(git(["write-tree"], index=index).strip())
        return git(
            ["diff-tree", "-p", "-r", "--no-color", "--no-ext-diff", "--no-renames",
             "--end-of-options", trees[0], trees[1]]
        )  # fmt: skip
