"""The workspace diff viewer: two candidates of 3,000 changed lines each, built and rendered.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marlin_bench .venv/bin/python -m bench.workspace_diff

Builds two synthetic unified diffs (40 Python files each, 3,000 changed lines in all per
candidate: modified, added and removed files), then times tasks.diffview.build_diff_view plus
render_to_string("tasks/_diff.html") for both candidates: once uncached (fresh candidate ids,
so the cache misses: parse + highlight + store + render) and then cached (median of 5 runs).
The cache is the one the settings configure: Redis when REDIS_URL is set, else files.
Target: the cached build + render of BOTH candidates takes <= 150 ms (median). Exits 1 if missed.
"""

from __future__ import annotations

import hashlib
import os
import random
import statistics
import time

from bench import _setup
from bench.repos_highlight import cache_description, python_source

FILES = 40
CHANGED_LINES = 3_000
RUNS = 5
SEED = 20261125
TARGET_CACHED_MS = 150.0


def synthetic_diff(seed: int) -> str:
    """A unified diff of FILES Python files with CHANGED_LINES added + removed lines in all."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data
    per_file = CHANGED_LINES // FILES
    out: list[str] = []
    for number in range(FILES):
        path = f"src/pkg{number % 5}/module_{number}.py"
        source = python_source(400, seed + number).split("\n")[:-1]
        if number % 10 == 8:  # an added file
            body = source[:per_file]
            out += ["--- /dev/null", f"+++ b/{path}", f"@@ -0,0 +1,{len(body)} @@"]
            out += [f"+{line}" for line in body]
            continue
        if number % 10 == 9:  # a removed file
            body = source[:per_file]
            out += [f"--- a/{path}", "+++ /dev/null", f"@@ -1,{len(body)} +0,0 @@"]
            out += [f"-{line}" for line in body]
            continue
        out += [f"--- a/{path}", f"+++ b/{path}"]
        # Hunks of 3 context lines, a few deletions, a few additions, 3 context lines.
        changed, offset, start = 0, 0, 1
        while changed < per_file:
            dels = min(rng.randint(1, 6), per_file - changed)
            adds = min(rng.randint(1, 8), per_file - changed - dels)
            context = source[start - 1 : start + 2]
            removed = source[start + 2 : start + 2 + dels]
            tail = source[start + 2 + dels : start + 5 + dels]
            added = [f"{line}  # changed" if line.strip() else line for line in removed[:adds]]
            added += ['    note = """a string', "    over lines", '    """'][: adds - len(added)]
            added += ["    pass"] * (adds - len(added))
            old_count = len(context) + len(removed) + len(tail)
            new_count = len(context) + len(added) + len(tail)
            out.append(f"@@ -{start},{old_count} +{start + offset},{new_count} @@ def f():")
            out += [f" {line}" for line in context]
            out += [f"-{line}" for line in removed]
            out += [f"+{line}" for line in added]
            out += [f" {line}" for line in tail]
            changed += len(removed) + len(added)
            offset += len(added) - len(removed)
            start += old_count + rng.randint(2, 6)
            if start + 12 > len(source):
                break
    return "\n".join(out) + "\n"


def main() -> int:
    _setup.setup()
    from django.core.cache import cache
    from django.core.cache.utils import make_template_fragment_key
    from django.template.loader import render_to_string

    from tasks.diffview import build_diff_view

    diffs = {"A": synthetic_diff(SEED), "B": synthetic_diff(SEED + 1000)}
    # Candidate ids nobody else uses, fresh per process: the first build always misses.
    base_id = 2_000_000_000 + (os.getpid() % 100_000) * 10
    ids = {"A": base_id + 1, "B": base_id + 2}
    print(f"machine:  {_setup.machine()}")
    print(f"cache:    {cache_description()}")

    def build_and_render() -> tuple[float, list]:
        start = time.perf_counter()
        views, sizes = [], []
        for slot, diff in diffs.items():
            view = build_diff_view(candidate_id=ids[slot], diff=diff)
            sizes.append(len(render_to_string("tasks/_diff.html", {"view": view, "slot": slot})))
            views.append(view)
        return (time.perf_counter() - start) * 1000, [*views, *sizes]

    first_ms, first = build_and_render()
    views = first[:2]
    for slot, view in zip(diffs, views, strict=True):
        print(
            f"input {slot}:  {view.files_changed} files, +{view.added} −{view.removed} "
            f"({view.added + view.removed:,} changed lines), {len(diffs[slot]) / 1024:.0f} KiB "
            f"diff, {first[2 + list(diffs).index(slot)] / 2**20:.2f} MiB of HTML"
        )
    cached = []
    build_only = []
    for _ in range(RUNS):
        ms, _result = build_and_render()
        cached.append(ms)
        start = time.perf_counter()
        for slot, diff in diffs.items():
            build_diff_view(candidate_id=ids[slot], diff=diff)
        build_only.append((time.perf_counter() - start) * 1000)
    stored = all(
        cache.get(key) is not None
        for key in (_key(ids[slot], diff) for slot, diff in diffs.items())
    )
    # The views and their cached renderings (the template's {% cache %} fragments).
    cache.delete_many(
        [_key(ids[slot], diff) for slot, diff in diffs.items()]
        + [
            make_template_fragment_key("diffview_html_v1", [v.key, s])
            for v, s in zip(views, diffs, strict=True)
        ]
    )
    print()
    _setup.print_table(
        ["both candidates (ms)", "runs", "median", "min", "max"],
        [["build + render, uncached (first)", 1, first_ms, first_ms, first_ms]]
        + [[label, len(values), statistics.median(values), min(values), max(values)]
           for label, values in (("build + render, cached", cached),
                                 ("build only (cache read), cached", build_only))],
    )  # fmt: skip
    cached_ms = statistics.median(cached)
    changed = all(v.added + v.removed == CHANGED_LINES and v.files_changed == FILES for v in views)
    return _setup.verdict(
        [(f"each candidate has {FILES} files and {CHANGED_LINES:,} changed lines", changed),
         ("both views were stored in the cache", stored),
         (f"cached build + render of both <= {TARGET_CACHED_MS:.0f} ms (median {cached_ms:.1f} ms)",
          cached_ms <= TARGET_CACHED_MS)]
    )  # fmt: skip


def _key(candidate_id: int, diff: str) -> str:
    from tasks.diffview import CACHE_VERSION

    return (
        f"diffview:v{CACHE_VERSION}:{candidate_id}:{hashlib.sha256(diff.encode()).hexdigest()[:16]}"
    )


if __name__ == "__main__":
    _setup.finish(main())
