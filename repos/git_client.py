"""Every git operation Marlin performs, through GitPython, with git hardened by its environment.

User text (URLs, refs, paths) is validated before it reaches git, and is always placed after
`--` or `--end-of-options`, so git can never read it as an option.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import git

from marlin.exceptions import ApplicationError


class GitError(ApplicationError):
    """A git operation failed; the message is fit to show a person."""


class UnsafeRepositoryUrl(GitError):
    pass


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


def validate_clone_url(url: str, *, allowed_bases: list[str]) -> str:
    """Return the canonical clone URL, or raise UnsafeRepositoryUrl before git ever sees it."""
    if not isinstance(url, str) or not url or len(url) > 300:
        raise UnsafeRepositoryUrl("The repository address is empty or too long.")
    if any(ord(ch) < 0x21 or ch in "%\\" for ch in url):
        raise UnsafeRepositoryUrl("The repository address contains forbidden characters.")
    parts = urlsplit(url)
    if parts.username or parts.password or parts.query or parts.fragment:
        raise UnsafeRepositoryUrl("The repository address may not carry credentials or queries.")
    base = f"{parts.scheme}://{parts.netloc}"
    if base not in allowed_bases:
        raise UnsafeRepositoryUrl(f"Only repositories on {', '.join(allowed_bases)} can be cloned.")
    segments = parts.path.split("/")
    if len(segments) != 3 or segments[0] != "":
        raise UnsafeRepositoryUrl(
            "The repository address must look like https://github.com/OWNER/NAME."
        )
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
    args: list[str], *, cwd: Path, env: dict[str, str], timeout: int, watch: Path, max_bytes: int
) -> None:
    """Run git, killing it when it outlives `timeout` or `watch` grows past `max_bytes`.

    GitPython's own timeout does not apply to long transfers we stream, so we poll.
    """
    baseline = _disk_usage(watch) if watch.exists() else 0
    proc = git.Git(str(cwd)).execute(["git", *args], env=env, as_process=True)
    popen = proc.proc
    deadline = time.monotonic() + timeout
    reason = ""
    try:
        while popen.poll() is None:
            if time.monotonic() > deadline:
                reason = f"took longer than {timeout} s"
            elif watch.exists() and _disk_usage(watch) - baseline > max_bytes:
                reason = f"is larger than {max_bytes // (1024 * 1024)} MiB"
            if reason:
                raise GitError(f"git {args[0]} stopped: the repository {reason}.")
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
        raise GitError(
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


def _missing_objects(repo: git.Repo, sha: str) -> set[str]:
    # Lists the blobs the partial clone left out, without fetching them ("?oid" lines).
    # --no-walk: only this commit's tree, not the whole history.
    output = repo.git.rev_list("--objects", "--missing=print", "--no-walk", "--end-of-options", sha)
    return {line[1:41] for line in output.splitlines() if line.startswith("?")}


def list_directory(dest: Path, sha: str, path: str, *, allowed_bases: list[str]) -> list[DirEntry]:
    """The entries of one directory at the commit: folders first, then by name.

    Never fetches a blob: sizes of blobs the partial clone left out are None.
    """
    if not _SHA_RE.match(sha):
        raise GitError("That is not a commit id.")
    repo = _open(dest, allowed_bases)
    treeish = f"{sha}:{_safe_path(path)}" if path else sha
    try:
        output = repo.git.ls_tree("-z", "--end-of-options", treeish)
    except git.GitCommandError as exc:
        raise GitError(f"No folder {path!r} at this commit.") from exc
    records = []
    for record in filter(None, output.split("\x00")):
        meta, name = record.split("\t", 1)
        mode, kind, oid = meta.split(" ")
        records.append((mode, kind, oid, name))
    missing = _missing_objects(repo, sha) if any(k == "blob" for _, k, _, _ in records) else set()
    wanted = [oid for _, kind, oid, _ in records if kind == "blob" and oid not in missing]
    # The object database's persistent `cat-file --batch-check` answers sizes of local blobs.
    sizes = {oid: repo.odb.info(bytes.fromhex(oid)).size for oid in wanted}
    entries = []
    for mode, kind, oid, name in records:
        entry_kind = {"tree": "dir", "commit": "submodule"}.get(kind, "file")
        if mode == "120000":
            entry_kind = "symlink"
        full = f"{path}/{name}" if path else name
        entries.append(
            DirEntry(name=name, path=full, kind=entry_kind, oid=oid, size=sizes.get(oid))
        )
    entries.sort(key=lambda e: (e.kind != "dir", e.name.lower()))
    return entries


def read_blob(dest: Path, sha: str, path: str, *, allowed_bases: list[str], max_bytes: int) -> Blob:
    """One file at the commit. A symlink yields its target text; it is never followed.

    A file over `max_bytes` is not read (nor fetched): its Blob has empty data.
    """
    if not _SHA_RE.match(sha):
        raise GitError("That is not a commit id.")
    repo = _open(dest, allowed_bases)
    safe = _safe_path(path)
    try:
        line = repo.git.ls_tree("-z", "--end-of-options", sha, "--", safe)
    except git.GitCommandError as exc:
        raise GitError(f"No file {path!r} at this commit.") from exc
    if not line:
        raise GitError(f"No file {path!r} at this commit.")
    meta, name = line.rstrip("\x00").split("\t", 1)
    mode, kind, oid = meta.split(" ")
    if kind != "blob" or name != safe:
        raise GitError(f"{path!r} is not a file.")
    if oid in _missing_objects(repo, sha):
        return Blob(path=safe, oid=oid, size=max_bytes + 1, is_symlink=False, data=b"")
    size = repo.odb.info(bytes.fromhex(oid)).size
    if size > max_bytes:
        return Blob(path=safe, oid=oid, size=size, is_symlink=mode == "120000", data=b"")
    data = repo.odb.stream(bytes.fromhex(oid)).read()
    return Blob(path=safe, oid=oid, size=size, is_symlink=mode == "120000", data=data)


def list_tree(dest: Path, sha: str, *, allowed_bases: list[str]) -> list[TreeEntry]:
    """Every file of the commit, recursively, without fetching any blob."""
    repo = _open(dest, allowed_bases)
    output = repo.git.ls_tree("-r", "-z", "--full-tree", "--end-of-options", sha)
    entries = []
    for record in filter(None, output.split("\x00")):
        meta, path = record.split("\t", 1)
        mode, kind, _ = meta.split(" ")
        if kind == "blob" and mode != "120000":
            entries.append(TreeEntry(path=path, is_dir=False, size=None))
    return entries


def read_file(
    dest: Path, sha: str, path: str, *, allowed_bases: list[str], max_bytes: int
) -> bytes:
    """The bytes of one regular file at the commit; symlinks are never followed.

    A blob the partial clone left out is larger than any file we read: refused unfetched.
    """
    files = read_files(dest, sha, [path], allowed_bases=allowed_bases, budget_bytes=max_bytes)
    if path not in files:
        raise GitError(f"{path!r} is not a regular file of at most {max_bytes} bytes here.")
    return files[path]


def read_files(
    dest: Path, sha: str, paths: list[str], *, allowed_bases: list[str], budget_bytes: int
) -> dict[str, bytes]:
    """As many of `paths` (in order) as fit in `budget_bytes`, opening the repository once.

    Skips what is not a regular file, a missing path, and any blob the partial clone left
    out (never fetched here); stops once the budget is spent.
    """
    if not _SHA_RE.match(sha):
        raise GitError("That is not a commit id.")
    repo = _open(dest, allowed_bases)
    missing = _missing_objects(repo, sha)
    tree = repo.commit(sha).tree
    found: dict[str, bytes] = {}
    remaining = budget_bytes
    for path in paths:
        if remaining <= 0:
            break
        try:
            item = tree / _safe_path(path)
        except (KeyError, ValueError, GitError):
            continue
        if item.type != "blob" or item.mode == 0o120000 or item.hexsha in missing:
            continue
        if item.size > remaining:
            continue
        found[path] = item.data_stream.read()
        remaining -= item.size
    return found


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
def temporary_worktree(dest: Path, sha: str, *, allowed_bases: list[str]) -> Iterator[Path]:
    """A private checkout of `sha`, always removed afterwards.

    git itself writes the files (`read-tree` into a private index, then `checkout-index`),
    so symlinks stay symlinks whatever they point to, and git never writes through one.
    The baseline repository the diff is taken against sits beside the checkout, not in
    it: code run in the checkout can reach neither the shared clone nor the git metadata
    (hooks, filters, fsmonitor) that worktree_diff later runs with.
    """
    if not _SHA_RE.match(sha):
        raise GitError("That is not a commit id.")
    repo = _open(dest, allowed_bases)
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


def check_patch(dest: Path, sha: str, diff: str, *, allowed_bases: list[str]) -> str:
    """Whether `diff` applies cleanly to `sha`: "" if it does, else git's reason.

    Uses a private index file, so the shared clone's state is never touched.
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
            repo.git.execute(["git", "read-tree", sha], env=env)
            repo.git.execute(["git", "apply", "--cached", "--check", str(patch)], env=env)
        except git.GitCommandError as exc:
            return _describe("apply", exc.stderr, exc.status).removeprefix("git apply failed: ")
    return ""
