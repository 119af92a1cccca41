"""Import 10,000 GitHub repository objects (JSONL) into an empty catalogue, then again.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marlin_bench .venv/bin/python -m bench.repos_import

Target (DESIGN.md): the first import of 10k rows takes <= 5 s on PostgreSQL. The second
import (every row an update) and the peak memory of the process are reported for information.
Exits 1 when the target is missed.
"""

from __future__ import annotations

import gc
import time

from bench import _setup

COUNT = 10_000
SEED = 20261125
TARGET_SECONDS = 5.0


def _empty_catalogue() -> None:
    """Delete every repository (never tasks); on PostgreSQL vacuum, so the table is truly empty."""
    from django.db import connection

    from repos.models import Repository
    from tasks.models import Task

    if Task.objects.exists():
        if connection.vendor != "postgresql":
            raise SystemExit(
                "This database has tasks, which reference repositories; point DATABASE_URL at "
                "a database of its own for the benchmark."
            )
        # Tasks reference repositories (PROTECT): never touch them, use a database of our own.
        name = f"{connection.settings_dict['NAME']}_import"
        print(f"the database has tasks; using the separate database {name}")
        _setup.switch_database(name)
        if Task.objects.exists():
            raise SystemExit(f"{name} has tasks too; point DATABASE_URL at an empty database.")
    # Repository.objects.all().delete(), in slices: deleting 100k rows at once would load them
    # all (the collector checks the tasks' PROTECT), and raise the peak memory reported below.
    pks = list(Repository.objects.values_list("pk", flat=True))
    for start in range(0, len(pks), 5000):
        Repository.objects.filter(pk__in=pks[start : start + 5000]).delete()
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE repos_repository")


def main() -> int:
    _setup.setup()
    from django.conf import settings
    from django.db import connection

    from repos import importing
    from repos.models import Repository
    from repos.services import repository_import

    blob = _setup.github_jsonl(COUNT, seed=SEED)
    _empty_catalogue()
    print(f"machine:  {_setup.machine()}")
    print(f"database: {_setup.describe_database()}")
    print(f"input:    {COUNT:,} repository objects, JSONL, {len(blob) / 2**20:.1f} MiB")
    rss_before = _setup.peak_rss_mib()

    # For information: reading and checking the rows alone, no database.
    start = time.perf_counter()
    parsed = sum(
        1
        for line in importing.parse(
            blob, filename="bench.jsonl", allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES
        )
        if line.row is not None
    )
    parse_s = time.perf_counter() - start

    gc.collect()
    start = time.perf_counter()
    first = repository_import(content=blob, filename="bench.jsonl")
    first_s = time.perf_counter() - start
    rss_first = _setup.peak_rss_mib()

    gc.collect()
    start = time.perf_counter()
    second = repository_import(content=blob, filename="bench.jsonl")
    second_s = time.perf_counter() - start
    rss_second = _setup.peak_rss_mib()
    rows = Repository.objects.count()

    print()
    _setup.print_table(
        ["run", "created", "updated", "rejected", "seconds", "rows/s", "peak RSS MiB"],
        [
            ["1: empty table", first.created, first.updated, len(first.rejected), first_s,
             round(COUNT / first_s), rss_first],
            ["2: all updates", second.created, second.updated, len(second.rejected), second_s,
             round(COUNT / second_s), rss_second],
            ["parse only, no DB", "", "", COUNT - parsed, parse_s, round(COUNT / parse_s), ""],
        ],
    )  # fmt: skip
    print(f"\npeak RSS before importing (blob built, Django loaded): {rss_before:.1f} MiB")
    checks = [
        (f"first import created all {COUNT:,} rows, none rejected",
         first.created == COUNT and not first.rejected),
        (f"second import updated all {COUNT:,} rows, none created",
         second.updated == COUNT and second.created == 0 and rows == COUNT),
    ]  # fmt: skip
    if connection.vendor == "postgresql":
        checks.append(
            (f"first import of 10k <= {TARGET_SECONDS:.0f} s ({first_s:.2f} s)",
             first_s <= TARGET_SECONDS)
        )  # fmt: skip
    else:
        print("(the time target is for PostgreSQL; not checked on this database)")
    return _setup.verdict(checks)


if __name__ == "__main__":
    _setup.finish(main())
