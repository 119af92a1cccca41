"""A repository with one folder of 100k files: reads cost what they ask for, never the tree.

The repository is built with git plumbing (fast-import for the blobs, mktree, commit-tree),
served by the loopback git server and cloned through the production code path.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from marlin.exceptions import ApplicationError
from repos import git_client, services
from repos.models import Repository
from tasks.models import Candidate
from tests.factories import RepositoryFactory
from tests.repos.helpers import build_bare_repository, build_large_folder_repository, plumbing
from tests.tasks.helpers import create_task, generate_all

FILES = 100_000
PAGE = 500  # entries per page of a folder (services.BROWSE_PAGE_SIZE)


@pytest.fixture(scope="module")
def large_remote(git_server) -> str:
    return build_large_folder_repository(git_server.root / "huge" / "folder.git")


@pytest.fixture
def large_repository(db, git_server, repo_cache_dir, large_remote) -> tuple[Repository, str]:
    """The repository cloned once per session (later tests fetch: nothing new)."""
    repository = RepositoryFactory(
        full_name="huge/folder", clone_url=f"{git_server.base_url}/huge/folder.git"
    )
    repository.queue_clone()
    services.repository_clone(repository_id=repository.pk)
    repository.refresh_from_db()
    assert repository.is_ready, repository.clone_error
    return repository, large_remote


@pytest.fixture
def git_processes(monkeypatch, tmp_path):
    """Counts the git processes started from now on: git traces each one to GIT_TRACE."""
    trace = tmp_path / "git-trace.log"
    monkeypatch.setenv("GIT_TRACE", str(trace))

    def count() -> int:
        if not trace.exists():
            return 0
        return trace.read_text(errors="replace").count("trace: built-in: git ")

    return count


def _bytes_read() -> int:
    """Bytes this process has read so far (pipes from git included)."""
    text = Path("/proc/self/io").read_text()
    return int(re.search(r"^rchar: (\d+)$", text, re.MULTILINE).group(1))


def test_the_folder_is_listed_one_page_at_a_time(large_repository, git_processes):
    repository, sha = large_repository
    view = services.repository_browse(
        repository=repository, sha=sha, path="big", max_bytes=settings.MARLIN_BROWSE_MAX_FILE_BYTES
    )
    assert [e.name for e in view.entries[:2]] == ["file_000000.txt", "file_000001.txt"]
    assert len(view.entries) == PAGE
    assert (view.page, view.page_count, view.total_entries) == (1, FILES // PAGE, FILES)
    assert view.next_page == 2 and view.previous_page is None
    assert view.entries[0].size == len(b"line 0\n")
    # One ls-tree for the path's kind, one for the folder, then the page's blobs only.
    assert git_processes() <= 4

    last = services.repository_browse(
        repository=repository, sha=sha, path="big", max_bytes=1024, page=FILES // PAGE
    )
    assert last.entries[-1].name == f"file_{FILES - 1:06d}.txt"
    assert last.next_page is None and last.previous_page == FILES // PAGE - 1


def test_a_page_past_the_last_is_refused(large_repository):
    repository, sha = large_repository
    with pytest.raises(ApplicationError, match="has 200 page"):
        services.repository_browse(
            repository=repository, sha=sha, path="big", max_bytes=1024, page=FILES // PAGE + 1
        )


def test_the_html_page_of_the_folder_is_bounded_and_links_the_next(
    client, contractor, large_repository
):
    repository, sha = large_repository
    client.force_login(contractor)
    response = client.get(reverse("repos:browse", args=[repository.pk, sha, "big"]))
    assert response.status_code == 200
    page = response.content.decode()
    # Before paging this was a 17 MB page of 100k rows.
    assert len(response.content) < 300_000
    assert page.count('class="entry-file"') == PAGE
    assert 'href="?page=2" rel="next"' in page
    assert "file_000499.txt" in page and "file_000500.txt" not in page

    second = client.get(reverse("repos:browse", args=[repository.pk, sha, "big"]), {"page": 2})
    assert "file_000500.txt" in second.content.decode()
    assert 'href="?page=1" rel="prev"' in second.content.decode()
    bad = client.get(reverse("repos:browse", args=[repository.pk, sha, "big"]), {"page": "x"})
    assert bad.status_code == 404


def test_the_api_pages_the_folder_with_next_and_previous_links(
    client, contractor, large_repository
):
    repository, sha = large_repository
    client.force_login(contractor)
    url = reverse("api-repository-tree", args=[repository.pk])
    first = client.get(url, {"ref": sha, "path": "big"}).json()
    assert len(first["entries"]) == PAGE and first["total_entries"] == FILES
    assert first["previous"] is None
    assert "page=2" in first["next"] and "path=big" in first["next"]
    second = client.get(first["next"]).json()
    assert second["entries"][0]["name"] == f"file_{PAGE:06d}.txt"
    assert "page=1" in second["previous"]
    past = client.get(url, {"ref": sha, "path": "big", "page": FILES // PAGE + 1})
    assert past.status_code == 400
    assert "has 200 page(s); there is no page 201" in past.json()["detail"]


def test_each_file_lookup_costs_the_same_whatever_the_folder_holds(large_repository, git_processes):
    repository, sha = large_repository
    dest = services.repository_cache_path(repository)
    bases = settings.MARLIN_GIT_ALLOWED_BASES
    paths = [f"big/file_{n:06d}.txt" for n in range(0, FILES, FILES // 50)]
    before = _bytes_read()
    for path in paths:
        assert git_client.read_file(dest, sha, path, allowed_bases=bases, max_bytes=1024)
    # The folder's tree is ~4 MB: a lookup that read it (GitPython parsing it in Python,
    # or a whole-tree listing) would read more than 200 MB for 50 files.
    assert _bytes_read() - before < 2_000_000
    assert git_processes() <= 4 * len(paths)


def test_reading_many_files_at_once_takes_a_fixed_number_of_git_processes(
    large_repository, git_processes
):
    repository, sha = large_repository
    dest = services.repository_cache_path(repository)
    paths = [f"big/file_{n:06d}.txt" for n in range(0, FILES, FILES // 50)]
    read = git_client.read_files(
        dest, sha, paths, allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES, budget_bytes=10**6
    )
    assert read.files["big/file_002000.txt"] == b"line 2000\n"
    assert len(read.files) == 50 and not read.timed_out
    # One ls-tree, one rev-list (which blobs the clone holds), one batch-check, one batch.
    assert git_processes() == 4


def test_repository_context_stops_at_its_time_budget_and_says_so(large_repository):
    repository, sha = large_repository
    paths = services.repository_paths(repository=repository, sha=sha)
    started = time.monotonic()
    # A byte budget that wants every one of the 100k files: only the time budget stops it.
    context = services.repository_context(
        repository=repository, sha=sha, budget_bytes=10**8, budget_seconds=0.5, paths=paths
    )
    elapsed = time.monotonic() - started
    # The budget, plus parsing what git returned just before the deadline.
    assert elapsed < 0.5 + 2.5, elapsed
    assert len(context.files) < FILES
    assert re.search(
        r"stopped after its 0.5 s time budget \(MARLIN_REPO_CONTEXT_SECONDS\): \d+ files were "
        r"read, \d+ more were not",
        context.note,
    ), context.note


def test_context_with_no_time_left_reads_nothing_and_says_so(large_repository):
    repository, sha = large_repository
    paths = services.repository_paths(repository=repository, sha=sha)
    context = services.repository_context(
        repository=repository, sha=sha, budget_seconds=0, paths=paths
    )
    assert context.files == {}
    assert "0 files were read, 100001 more were not" in context.note


def test_a_repository_too_big_to_list_in_time_fails_its_candidates_naming_the_cause(
    large_repository, project, contractor, settings
):
    cloned, _ = large_repository
    # A second copy of the clone: a listing made by an earlier test is not reused for it.
    repository = RepositoryFactory(
        full_name="huge/folder-copy", clone_url=cloned.clone_url,
        clone_status=Repository.CloneStatus.READY, cloned_at=cloned.cloned_at,
    )  # fmt: skip
    shutil.copytree(
        services.repository_cache_path(cloned),
        services.repository_cache_path(repository),
        dirs_exist_ok=True,
    )
    settings.MARLIN_REPO_CONTEXT_SECONDS = 0.001
    task = generate_all(create_task(contractor=contractor, project=project, repository=repository))
    for candidate in Candidate.objects.filter(turn__task=task):
        assert candidate.status == Candidate.Status.FAILED
        # The repository, not the model, was too slow.
        assert candidate.error.startswith("Reading the repository took too long"), candidate.error


# --- Blobs fetched lazily count toward the clone's size limit ----------------------------


@pytest.fixture
def partial_clone(git_server, tmp_path) -> tuple[Path, str]:
    """A clone that left out its one 2 MiB file (the blob limit is 512 KiB)."""
    shas = build_bare_repository(
        git_server.root / "lazy" / "repo.git",
        {"README.md": "# lazy\n", "data/big.bin": os.urandom(2 * 1024 * 1024)},
    )
    dest = tmp_path / "cache" / "lazy" / "repo.git"
    git_client.clone_or_fetch(
        f"{git_server.base_url}/lazy/repo.git", dest, allowed_bases=[git_server.base_url],
        timeout=60, max_bytes=10 * 1024 * 1024, blob_limit=512 * 1024,
    )  # fmt: skip
    assert _missing(dest, shas["main"]), "the clone should have left the big blob out"
    return dest, shas["main"]


def _missing(dest: Path, sha: str) -> list[str]:
    output = plumbing(
        ["rev-list", "--objects", "--quiet", "--missing=print", "--no-walk", sha], cwd=dest
    )
    return [line for line in output.splitlines() if line.startswith("?")]


def test_a_lazily_fetched_blob_past_the_clone_limit_is_refused(git_server, partial_clone):
    dest, sha = partial_clone
    limit = r"1 MiB clone limit \(MARLIN_CLONE_MAX_MB\)"
    with (
        pytest.raises(git_client.GitTooLarge, match=limit),
        git_client.temporary_worktree(
            dest, sha, allowed_bases=[git_server.base_url], max_bytes=1024 * 1024
        ),
    ):
        pytest.fail("the checkout must not be made")
    # Nothing half-fetched stays behind: the blob is still missing, no partial pack remains.
    assert _missing(dest, sha)
    assert not list((dest / "objects" / "pack").glob("tmp_*"))


def test_a_lazily_fetched_blob_within_the_limit_is_checked_out(git_server, partial_clone):
    dest, sha = partial_clone
    with git_client.temporary_worktree(
        dest, sha, allowed_bases=[git_server.base_url], max_bytes=10 * 1024 * 1024
    ) as worktree:
        assert (worktree / "data" / "big.bin").stat().st_size == 2 * 1024 * 1024
    assert not _missing(dest, sha)


def test_a_patch_of_a_left_out_file_past_the_limit_is_refused(git_server, partial_clone):
    dest, sha = partial_clone
    diff = "--- a/data/big.bin\n+++ b/data/big.bin\n@@ -1 +1 @@\n-x\n+y\n"
    with pytest.raises(git_client.GitTooLarge, match=r"MARLIN_CLONE_MAX_MB"):
        git_client.check_patch(
            dest, sha, diff, allowed_bases=[git_server.base_url], max_bytes=1024 * 1024
        )
    assert _missing(dest, sha)
