"""The path guard of the file browser's reads refuses by its own rule, before git runs:
git refusing a bad path for reasons of its own (no such entry) must not be what keeps a
path inside the repository."""

from __future__ import annotations

import pytest
from django.conf import settings

from repos import git_client
from repos.models import Repository
from repos.services import repository_cache_path

NOT_VALID = r"^That file path is not valid\.$"
BAD_PATHS = [
    "../README.md",
    "calc/../README.md",
    "calc/..",
    "./README.md",
    "calc/./ops.py",
    "calc//ops.py",
    "/etc/passwd",
    "calc\\ops.py",
    "README.md\x00",
]


def _read_blob(dest, sha, path):
    return git_client.read_blob(
        dest, sha, path, allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES, max_bytes=10_000
    )


def _list_directory(dest, sha, path):
    return git_client.list_directory(
        dest, sha, path, allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES
    )


@pytest.mark.parametrize("read", [_read_blob, _list_directory])
@pytest.mark.parametrize("path", BAD_PATHS)
def test_every_read_refuses_a_path_that_could_leave_the_tree(
    ready_repository: Repository, read, path: str
) -> None:
    dest = repository_cache_path(ready_repository)
    sha = git_client.resolve_commit(dest, "main", allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES)
    with pytest.raises(git_client.GitError, match=NOT_VALID):
        read(dest, sha, path)


def test_the_same_reads_succeed_on_the_clean_paths(ready_repository: Repository) -> None:
    # The refusals above are the guard's, not a broken repository's.
    dest = repository_cache_path(ready_repository)
    sha = git_client.resolve_commit(dest, "main", allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES)
    assert _read_blob(dest, sha, "calc/ops.py") is not None
    _list_directory(dest, sha, "calc")  # no error: a clean folder path is listed
