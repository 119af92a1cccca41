"""A repository whose tree holds a `.git` entry is refused at clone and at fetch (git's fsck).

Such a tree cannot be made with `git add`, only with plumbing, and GitHub refuses the push;
but a checkout or an archive of it would write into a `.git` folder, so Marlin never stores it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from repos import git_client, services
from repos.models import Repository
from tests.repos.helpers import GIT_ENV, build_bare_repository


def git(*args: str, cwd: Path, input_text: str | None = None, check: bool = True) -> str:
    """Run git; with check=False, "" when it fails."""
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, input=input_text, capture_output=True, text=True
    )
    if check and result.returncode:
        raise AssertionError(result.stderr)
    return result.stdout.strip() if result.returncode == 0 else ""


REFUSED = r"The repository contains a path git refuses \(hasDotgit: contains '\.git'\)\."


def add_dotgit_commit(bare: Path) -> str:
    """Commit, on main of the bare repository, a tree holding a `.git/config` entry."""
    blob = git("hash-object", "-w", "--stdin", cwd=bare, input_text="[core]\n\tbare = false\n")
    inner = git("mktree", cwd=bare, input_text=f"100644 blob {blob}\tconfig\n")
    readme = git("hash-object", "-w", "--stdin", cwd=bare, input_text="hello\n")
    tree = git(
        "mktree", cwd=bare, input_text=f"040000 tree {inner}\t.git\n100644 blob {readme}\tREADME\n"
    )
    parents = (
        ["-p", "main"] if git("rev-parse", "--verify", "-q", "main", cwd=bare, check=False) else []
    )
    commit = git("commit-tree", tree, *parents, "-m", "sneaky", cwd=bare)
    git("update-ref", "refs/heads/main", commit, cwd=bare)
    return commit


def clone(git_server, name: str, dest: Path) -> None:
    git_client.clone_or_fetch(
        f"{git_server.base_url}/{name}.git", dest, allowed_bases=[git_server.base_url],
        timeout=60, max_bytes=10**9, blob_limit=10**6,
    )  # fmt: skip


def test_a_clone_of_a_tree_with_a_dotgit_entry_is_refused_and_cleaned_up(git_server, tmp_path):
    bare = git_server.root / "sneaky" / "clone.git"
    bare.mkdir(parents=True)
    git("init", "-q", "--bare", "-b", "main", cwd=bare)
    add_dotgit_commit(bare)
    dest = tmp_path / "cache" / "sneaky" / "clone.git"
    with pytest.raises(git_client.GitError, match=REFUSED):
        clone(git_server, "sneaky/clone", dest)
    # Nothing half-cloned: no cache and no temporary folder, only the lock file.
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == [Path(str(dest) + ".lock")]


def test_a_fetch_bringing_a_dotgit_entry_is_refused_and_keeps_the_old_refs(git_server, tmp_path):
    bare = git_server.root / "sneaky" / "fetch.git"
    first = build_bare_repository(bare, {"a.txt": "a\n"})["main"]
    dest = tmp_path / "cache" / "sneaky" / "fetch.git"
    clone(git_server, "sneaky/fetch", dest)
    sneaky = add_dotgit_commit(bare)
    with pytest.raises(git_client.GitError, match=REFUSED):
        clone(git_server, "sneaky/fetch", dest)
    # The cache still serves the last good commit; the refused one never got in.
    assert git("rev-parse", "refs/heads/main", cwd=dest) == first
    # (Listed, not looked up: a lookup in a partial clone would fetch the missing object.)
    stored = git("cat-file", "--batch-all-objects", "--batch-check=%(objectname)", cwd=dest)
    assert first in stored.split() and sneaky not in stored.split()


def test_the_clone_job_fails_the_repository_with_the_reason(db, git_server, repo_cache_dir):
    bare = git_server.root / "sneaky" / "job.git"
    bare.mkdir(parents=True)
    git("init", "-q", "--bare", "-b", "main", cwd=bare)
    add_dotgit_commit(bare)
    repository = Repository.objects.create(
        full_name="sneaky/job", clone_url=f"{git_server.base_url}/sneaky/job.git"
    )
    repository.queue_clone()
    services.repository_clone(repository_id=repository.pk)
    repository.refresh_from_db()
    assert repository.clone_status == Repository.CloneStatus.FAILED
    assert repository.clone_error.startswith("The repository contains a path git refuses")
    assert not services.repository_cache_path(repository).exists()
