"""A repository with one folder of 100,000 files: browsing it, and reading files from it.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marlin_bench .venv/bin/python -m bench.large_folder

Builds the repository with git plumbing (fast-import for the blobs, mktree, commit-tree) in a
temporary cache directory (a full bare clone is a valid cache), then times:

- the browse page of the folder through Django's test Client as a logged-in contractor (the
  whole request: path lookup, one page of entries, their sizes, the template), and its size;
- the same folder through git_client.list_directory, one page and every entry;
- 53 file lookups, one read_file each (what reading one file per request costs), and the
  same 53 files in one read_files call (what building a prompt's context costs);
- repository_context over the whole repository with a byte budget that wants every file,
  under a 2 s time budget: it must end by the budget, and say so if it stopped early.

Before paging and git plumbing (issue 14): the page took 21-34 s and weighed 17 MB; 53
lookups took 86 s. Targets: the page <= 2,000 ms (median) and <= 300 KB; 53 lookups
<= 5,000 ms; context within its budget + 1 s. Exits 1 when missed.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench import _setup
from tests.repos.helpers import build_large_folder_repository as build

FILES = 100_000
LOOKUPS = 53
RUNS = 3
TARGET_PAGE_MS = 2_000.0
TARGET_PAGE_BYTES = 300_000
TARGET_LOOKUPS_MS = 5_000.0
CONTEXT_SECONDS = 2.0
USERNAME = "bench-browser"


def timed(call) -> tuple[float, object]:
    start = time.perf_counter()
    result = call()
    return (time.perf_counter() - start) * 1000, result


def main() -> int:
    _setup.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from repos import git_client, services
    from repos.models import Repository

    cache_dir = Path(tempfile.mkdtemp(prefix="marlin-bench-large-"))
    settings.MARLIN_REPO_CACHE_DIR = cache_dir
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    try:
        repository, _ = Repository.objects.update_or_create(
            full_name="bench/huge-folder",
            defaults={
                "clone_url": "https://github.com/bench/huge-folder.git",
                "html_url": "https://github.com/bench/huge-folder",
                "clone_status": Repository.CloneStatus.READY,
                "cloned_at": timezone.now(),
            },
        )
        dest = services.repository_cache_path(repository)
        build_ms, sha = timed(lambda: build(dest, FILES))
        print(f"machine:  {_setup.machine()}")
        print(f"input:    big/ with {FILES:,} files, built in {build_ms / 1000:.1f} s")

        # Any signed-in person may browse; the page is the same for every role.
        user, _ = get_user_model().objects.get_or_create(username=USERNAME)
        client = Client()
        client.force_login(user)
        url = reverse("repos:browse", args=[repository.pk, sha, "big"])
        page_ms, sizes = [], []
        for _run in range(RUNS):
            ms, response = timed(lambda: client.get(url))
            assert response.status_code == 200, response.status_code
            page_ms.append(ms)
            sizes.append(len(response.content))

        bases: list[str] = []
        list_page = [timed(lambda: git_client.list_directory(
            dest, sha, "big", allowed_bases=bases, limit=services.BROWSE_PAGE_SIZE))[0]
            for _ in range(RUNS)]  # fmt: skip
        list_all_ms, listing = timed(
            lambda: git_client.list_directory(dest, sha, "big", allowed_bases=bases)
        )
        paths = [f"big/file_{n:06d}.txt" for n in range(0, FILES, FILES // LOOKUPS)][:LOOKUPS]
        lookups_ms, _ = timed(lambda: [
            git_client.read_file(dest, sha, p, allowed_bases=bases, max_bytes=1 << 20)
            for p in paths])  # fmt: skip
        batch_ms, batch = timed(
            lambda: git_client.read_files(
                dest, sha, paths, allowed_bases=bases, budget_bytes=1 << 20
            )
        )
        context_ms, context = timed(
            lambda: services.repository_context(
                repository=repository, sha=sha, budget_bytes=10**8, budget_seconds=CONTEXT_SECONDS
            )
        )
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)

    print()
    _setup.print_table(
        ["measure", "runs", "median ms", "max ms", "result"],
        [["browse page of big/ (whole request)", RUNS, statistics.median(page_ms), max(page_ms),
          f"{max(sizes) / 1024:.0f} KiB"],
         ["list_directory, one page", RUNS, statistics.median(list_page), max(list_page),
          f"{services.BROWSE_PAGE_SIZE} entries"],
         ["list_directory, every entry", 1, list_all_ms, list_all_ms,
          f"{len(listing.entries):,} entries"],
         [f"{LOOKUPS} x read_file", 1, lookups_ms, lookups_ms, f"{lookups_ms / LOOKUPS:.0f} ms each"],
         [f"read_files of the same {LOOKUPS}", 1, batch_ms, batch_ms, f"{len(batch.files)} files"],
         [f"repository_context, {CONTEXT_SECONDS:g} s budget", 1, context_ms, context_ms,
          f"{len(context.files):,} files read"]],
    )  # fmt: skip
    if context.note:
        print(f"\ncontext note: {context.note}")
    return _setup.verdict(
        [(f"browse page <= {TARGET_PAGE_MS:,.0f} ms (median {statistics.median(page_ms):,.0f} ms)",
          statistics.median(page_ms) <= TARGET_PAGE_MS),
         (f"browse page <= {TARGET_PAGE_BYTES / 1000:.0f} KB ({max(sizes) / 1000:.0f} KB)",
          max(sizes) <= TARGET_PAGE_BYTES),
         (f"{LOOKUPS} lookups <= {TARGET_LOOKUPS_MS:,.0f} ms ({lookups_ms:,.0f} ms)",
          lookups_ms <= TARGET_LOOKUPS_MS),
         (f"context within its {CONTEXT_SECONDS:g} s budget + 1 s ({context_ms / 1000:.1f} s),"
          " saying so if it stopped early",
          context_ms <= (CONTEXT_SECONDS + 1) * 1000
          and (bool(context.note) or len(context.files) == FILES + 1))]
    )  # fmt: skip


if __name__ == "__main__":
    _setup.finish(main())
