"""Build bare repositories with any content (symlinks, binaries, tags) for the git server."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


def build_bare_repository(
    dest: Path,
    files: dict[str, str | bytes],
    *,
    symlinks: dict[str, str] | None = None,
    branches: dict[str, dict[str, str]] | None = None,
    tags: list[str] | None = None,
) -> dict[str, str]:
    """Create `dest` (bare) with one commit on main, optional extra branches and tags.

    Returns the sha of every ref made: {"main": sha, "<branch>": sha, "<tag>": sha}.
    """
    shas: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        git("init", "-q", "-b", "main", cwd=work)
        for rel, content in files.items():
            target = work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        for rel, link_to in (symlinks or {}).items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(link_to, work / rel)
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", "initial", cwd=work)
        shas["main"] = git("rev-parse", "HEAD", cwd=work)
        for tag in tags or []:
            git("tag", tag, cwd=work)
            shas[tag] = shas["main"]
        for branch, changes in (branches or {}).items():
            git("checkout", "-q", "-b", branch, "main", cwd=work)
            for rel, content in changes.items():
                (work / rel).parent.mkdir(parents=True, exist_ok=True)
                (work / rel).write_text(content)
            git("add", "-A", cwd=work)
            git("commit", "-q", "-m", f"on {branch}", cwd=work)
            shas[branch] = git("rev-parse", "HEAD", cwd=work)
        git("checkout", "-q", "main", cwd=work)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        git("clone", "-q", "--bare", str(work), str(dest), cwd=work)
    return shas


def plumbing(args: list[str], *, cwd: Path, stdin: bytes = b"") -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, input=stdin, capture_output=True, check=True
    )
    return done.stdout.decode().strip()


def build_large_folder_repository(dest: Path, files: int = 100_000) -> str:
    """A bare repository whose `big/` holds `files` small files (plus a README); its sha.

    Plumbing only: `git add` of 100k files would take minutes, this takes seconds.
    """
    dest.mkdir(parents=True, exist_ok=True)
    plumbing(["init", "-q", "--bare", "-b", "main"], cwd=dest)
    blobs = b"".join(
        b"blob\nmark :%d\ndata %d\n%s\n" % (n + 1, len(body), body)
        for n in range(files)
        for body in [b"line %d\n" % n]
    )
    marks = dest / "marks"
    plumbing(
        ["fast-import", "--quiet", f"--export-marks={marks}"], cwd=dest, stdin=blobs + b"done\n"
    )
    oids = dict(line.split(" ") for line in marks.read_text().splitlines())
    marks.unlink()
    listing = "".join(f"100644 blob {oids[f':{n + 1}']}\tfile_{n:06d}.txt\n" for n in range(files))
    folder = plumbing(["mktree"], cwd=dest, stdin=listing.encode())
    readme = plumbing(["hash-object", "-w", "--stdin"], cwd=dest, stdin=b"# One huge folder\n")
    root = plumbing(
        ["mktree"],
        cwd=dest,
        stdin=f"100644 blob {readme}\tREADME.md\n040000 tree {folder}\tbig\n".encode(),
    )
    sha = plumbing(["commit-tree", "-m", "100k files", root], cwd=dest)
    plumbing(["update-ref", "refs/heads/main", sha], cwd=dest)
    return sha
