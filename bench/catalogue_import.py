"""A catalogue import (the upload's worker job) against PostgreSQL's own COPY of the same rows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marlin_bench .venv/bin/python -m bench.catalogue_import [--rows 10000,100000] [--rounds 3]

For each size, a JSONL file of GitHub repository objects is written to a temporary folder
and stored as an upload is (catalogue_import_start); then, in each round:

1. the catalogue is emptied and catalogue_import_execute (what the worker runs) imports the
   file: every row is created;
2. COPY loads the same rows (as stored, dumped once with COPY TO) into a fresh scratch table
   made `LIKE repos_repository INCLUDING ALL` (same columns, constraints and indexes, the two
   trigram indexes too);
3. the same file is imported again: every row is an update;
4. COPY again, into a fresh scratch table.

Each import is divided by the COPY next to it; the median over the rounds is the figure.
Also printed: the CPU ratio, (this process's CPU, all threads, + its server backend's) over
the COPY backend's CPU, which a loaded machine moves much less than wall time.
Target (issue 19): every ratio <= 1.5. Also reported, not checked: a file in which every row
changed (stars and description), imported over the catalogue. Exits 1 when a target is
missed, or when the process grows by more than 150 MiB while importing (the job must hold
one batch, not the file).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench import _setup

SEED = 20261202
TARGET_RATIO = 1.5
# The import holds one batch of rows and one row of text; everything above this is a leak.
MAX_RSS_GROWTH_MIB = 150
SCRATCH = "bench_copy_scratch"


def _backend_cpu_s() -> float:
    """CPU seconds used so far by this connection's PostgreSQL backend (same machine)."""
    import os

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_s() -> float:
    """CPU seconds of this process (all threads) plus its database backend."""
    return time.process_time() + _backend_cpu_s()


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


def write_catalogue(path: Path, rows: int, *, changed: bool = False) -> None:
    """`rows` GitHub objects as JSONL; `changed` gives every row other stars and words."""
    factory = _setup.RepositoryFactory(SEED)
    with path.open("w") as out:
        for index in range(rows):
            obj = factory.make(index)
            if changed:
                obj["stargazers_count"] += 1
                obj["description"] = f"{obj['description'] or ''} (updated)"
            out.write(json.dumps(obj, separators=(",", ":")) + "\n")


def _columns() -> str:
    from repos.models import Repository

    return ", ".join(f.column for f in Repository._meta.concrete_fields if not f.primary_key)


def dump_rows() -> str:
    """The catalogue as stored, in COPY's text format: what the baseline COPY loads."""
    from django.db import connection

    buffer = io.StringIO()
    with connection.cursor() as cursor:
        sql = f"COPY (SELECT {_columns()} FROM repos_repository) TO STDOUT"  # noqa: S608 - model's columns
        cursor.copy_expert(sql, buffer)
    return buffer.getvalue()


def time_copy(rows: str) -> tuple[float, float]:
    """Seconds and CPU seconds (server) for COPY of `rows` into a fresh table shaped like the
    catalogue, indexes too."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
        cursor.execute(f"CREATE TABLE {SCRATCH} (LIKE repos_repository INCLUDING ALL)")
        cpu = _backend_cpu_s()
        start = time.perf_counter()
        cursor.copy_expert(f"COPY {SCRATCH} ({_columns()}) FROM STDIN", io.StringIO(rows))
        seconds = time.perf_counter() - start
        cpu = _backend_cpu_s() - cpu
        cursor.execute(f"DROP TABLE {SCRATCH}")
    return seconds, cpu


def time_import(path: Path) -> tuple[float, float, object, float]:
    """Seconds and CPU seconds (this process and its server backend) for the worker's job
    over the stored file, the job, and the RSS growth (MiB)."""
    from django.core.files import File

    from repos.catalogue_imports import catalogue_import_execute, catalogue_import_start

    with path.open("rb") as handle:
        job = catalogue_import_start(
            by=None, upload=File(handle), filename=path.name, enqueue=False
        )
    before = _rss_mib()
    sampler = RssSampler()
    sampler.start()
    cpu = _cpu_s()
    start = time.perf_counter()
    job = catalogue_import_execute(import_id=job.pk)
    seconds = time.perf_counter() - start
    cpu = _cpu_s() - cpu
    return seconds, cpu, job, sampler.stop() - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="10000,100000", help="sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()

    _setup.setup()
    from bench.repos_import import _empty_catalogue
    from repos.models import CatalogueImport, Repository

    print(f"machine:  {_setup.machine()}")
    print(f"database: {_setup.describe_database()}")
    table: list[list[object]] = []
    checks: list[tuple[str, bool]] = []
    with tempfile.TemporaryDirectory() as folder:
        for count in (int(n) for n in options.rows.split(",")):
            path = Path(folder) / f"catalogue-{count}.jsonl"
            changed = Path(folder) / f"changed-{count}.jsonl"
            write_catalogue(path, count)
            write_catalogue(changed, count, changed=True)
            print(f"input:    {count:,} repository objects, {path.stat().st_size / 2**20:.1f} MiB")
            times: dict[str, list[float]] = {"empty": [], "update": [], "changed": []}
            ratios: dict[str, list[float]] = {"empty": [], "update": [], "changed": []}
            cpu_ratios: dict[str, list[float]] = {"empty": [], "update": [], "changed": []}
            growth = 0.0
            rows = ""
            for _ in range(options.rounds):
                _empty_catalogue()
                seconds, cpu, job, grew = time_import(path)
                growth = max(growth, grew)
                checks.append(
                    (f"{count:,} into an empty table: all created",
                     job.status == CatalogueImport.Status.SUCCEEDED
                     and job.rows_created == count == Repository.objects.count())
                )  # fmt: skip
                rows = rows or dump_rows()
                copy_s, copy_cpu = time_copy(rows)
                times["empty"].append(seconds)
                ratios["empty"].append(seconds / copy_s)
                cpu_ratios["empty"].append(cpu / copy_cpu)

                seconds, cpu, job, grew = time_import(path)
                growth = max(growth, grew)
                checks.append(
                    (f"{count:,} again: all updated",
                     job.rows_updated == count and job.rows_created == 0)
                )  # fmt: skip
                copy_s, copy_cpu = time_copy(rows)
                times["update"].append(seconds)
                ratios["update"].append(seconds / copy_s)
                cpu_ratios["update"].append(cpu / copy_cpu)

            # For information: every row changed, so every row gets a new version.
            seconds, cpu, job, grew = time_import(changed)
            copy_s, copy_cpu = time_copy(rows)
            times["changed"].append(seconds)
            ratios["changed"].append(seconds / copy_s)
            cpu_ratios["changed"].append(cpu / copy_cpu)
            growth = max(growth, grew)
            for case, label in (
                ("empty", "into an empty table"),
                ("update", "all updates, same file"),
                ("changed", "all updates, every row changed (info)"),
            ):
                ratio = statistics.median(ratios[case])
                import_s = statistics.median(times[case])
                table.append(
                    [f"{count:,} {label}", import_s, round(import_s / ratio, 2),
                     f"{ratio:.2f}x", " ".join(f"{r:.2f}" for r in ratios[case]),
                     f"{statistics.median(cpu_ratios[case]):.2f}x", round(count / import_s)]
                )  # fmt: skip
                if case != "changed":
                    checks.append(
                        (f"{count:,} {label}: {ratio:.2f}x COPY <= {TARGET_RATIO}x",
                         ratio <= TARGET_RATIO)
                    )  # fmt: skip
            checks.append(
                (f"{count:,}: RSS grew by at most {MAX_RSS_GROWTH_MIB} MiB ({growth:.1f} MiB)",
                 growth <= MAX_RSS_GROWTH_MIB)
            )  # fmt: skip
    print()
    _setup.print_table(
        ["case", "import s", "COPY s", "ratio (median)", "each round", "CPU ratio", "rows/s"],
        table,
    )
    print(f"\nload after the run: {_setup.machine().rsplit('load ', 1)[-1]}")
    # The same check once per round: keep the first failure of each, drop the repeats.
    unique: dict[str, bool] = {}
    for name, ok in checks:
        unique[name] = unique.get(name, True) and ok
    return _setup.verdict(list(unique.items()))


if __name__ == "__main__":
    _setup.finish(main())
