"""Import a generated 100 MB catalogue (JSONL) through the upload service and the import job.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marlin_bench .venv/bin/python -m bench.catalogue_import [--mb 100]

The file is written to a temporary folder row by row, then handed to
repos.catalogue_imports.catalogue_import_start (the head check and the storage, as an upload
is) and catalogue_import_execute (what the worker runs), in this process so its memory can
be watched. Prints rows/s, wall time and the peak RSS while importing; exits 1 when memory
grows with the file (the import must hold at most one batch, not the file).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

from bench import _setup

SEED = 20261202
# The import holds one batch of rows and one row of text; everything above this is a leak.
MAX_RSS_GROWTH_MIB = 150


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler(threading.Thread):
    """The highest RSS seen while running (ru_maxrss also counts the file's generation)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = _rss_mib()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            self.peak = max(self.peak, _rss_mib())

    def stop(self) -> float:
        self.done.set()
        self.join()
        return max(self.peak, _rss_mib())


def write_catalogue(path: Path, megabytes: int) -> int:
    factory = _setup.RepositoryFactory(SEED)
    rows = 0
    with path.open("w") as out:
        while out.tell() < megabytes * 2**20:
            out.write(json.dumps(factory.make(rows), separators=(",", ":")) + "\n")
            rows += 1
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=100, help="size of the generated file")
    options = parser.parse_args()

    _setup.setup()
    from django.core.files import File

    from bench.repos_import import _empty_catalogue
    from repos.catalogue_imports import catalogue_import_execute, catalogue_import_start
    from repos.models import CatalogueImport, Repository

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "catalogue.jsonl"
        start = time.perf_counter()
        rows = write_catalogue(path, options.mb)
        size = path.stat().st_size
        print(f"machine:  {_setup.machine()}")
        print(f"database: {_setup.describe_database()}")
        print(
            f"input:    {rows:,} repository objects, JSONL, {size / 2**20:.1f} MiB "
            f"(written in {time.perf_counter() - start:.1f} s)"
        )
        _empty_catalogue()

        rss_before = _rss_mib()
        sampler = RssSampler()
        sampler.start()
        start = time.perf_counter()
        with path.open("rb") as handle:
            job = catalogue_import_start(
                by=None, upload=File(handle), filename=path.name, enqueue=False
            )
        queued_s = time.perf_counter() - start
        job = catalogue_import_execute(import_id=job.pk)
        wall_s = time.perf_counter() - start
        rss_peak = sampler.stop()

    assert job is not None
    count = Repository.objects.count()
    print()
    _setup.print_table(
        ["step", "seconds", "rows", "rows/s", "MiB/s"],
        [
            ["upload: head check + store", queued_s, "", "", ""],
            ["import job (parse + upsert)", wall_s - queued_s, job.rows_read,
             round(job.rows_read / (wall_s - queued_s)), round(size / 2**20 / (wall_s - queued_s), 1)],
            ["total wall time", wall_s, job.rows_read, round(job.rows_read / wall_s), ""],
        ],
    )  # fmt: skip
    print(
        f"\nstatus {job.status}: {job.rows_created:,} created, {job.rows_updated:,} updated, "
        f"{job.rows_rejected:,} rejected; {job.bytes_read:,} of {job.size_bytes:,} bytes read"
    )
    print(
        f"RSS: {rss_before:.1f} MiB before the import, peak {rss_peak:.1f} MiB while importing "
        f"(+{rss_peak - rss_before:.1f} MiB for a {size / 2**20:.0f} MiB file)"
    )
    checks = [
        (f"the job SUCCEEDED with all {rows:,} rows",
         job.status == CatalogueImport.Status.SUCCEEDED and job.rows_imported == rows == count),
        (f"RSS grew by at most {MAX_RSS_GROWTH_MIB} MiB ({rss_peak - rss_before:.1f} MiB)",
         rss_peak - rss_before <= MAX_RSS_GROWTH_MIB),
    ]  # fmt: skip
    return _setup.verdict(checks)


if __name__ == "__main__":
    _setup.finish(main())
