"""The workspace diff viewer: two candidates of 3,000 changed lines each, built and rendered.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marlin_bench .venv/bin/python -m bench.workspace_diff

Builds two synthetic unified diffs (40 Python files each, 3,000 changed lines in all per
candidate: modified, added and removed files) and times, in one run:

- raw Pygments: pygments.highlight() with HtmlFormatter of the same text the viewer lexes
  (each file's old-side and new-side lines, joined), both candidates: the floor;
- first view: tasks.diff_html.diff_page for both candidates on a cache miss (parse, one lexer
  pass per file side, word marks, both layouts' HTML for every file, stored in the cache:
  what the worker does when it stores a candidate, and a view that misses does) plus the
  rendering of templates/tasks/_diff.html;
- cached: the same for both candidates once cached (median of RUNS), the diff part of the
  workspace page; and one lazily loaded file (tasks.diff_html.diff_file_html);
- the initial HTML: the two _diff.html fragments as the page sends them (one layout, the
  first files), uncompressed and gzipped;
- the whole workspace page (`GET /tasks/<id>/` through Django's test Client, signed in as
  its contractor) of a task whose two candidates carry these diffs, once their HTML is
  built as the worker builds it when it stores them: median of RUNS, and its queries.

The diff part makes no database queries whatever the number of files (checked for 1 and
40 files with CaptureQueriesContext); the page around it is checked for a constant count
by tests/tasks/test_diff_html.py. The cache is the one the settings configure: Redis
when REDIS_URL is set, else files.

Targets (exit 1 if missed): first view <= 1.3x raw Pygments; cached diff part and cached
whole page <= 150 ms (median); initial HTML <= 1 MB; zero queries for 1 and for 40 files.
"""

from __future__ import annotations

import os
import random
import statistics
import time

from bench import _setup
from bench.repos_highlight import cache_description, python_source

FILES = 40
CHANGED_LINES = 3_000
RUNS = 5
FIRST_RUNS = 3
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


def raw_pygments_ms(diffs: dict[str, str]) -> float:
    """pygments.highlight of each file's old and new side (the viewer's input), both diffs."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name

    from tasks.diffview import _parse

    sides = []
    for diff in diffs.values():
        for raw in _parse(diff):
            for keep in ((" ", "-"), (" ", "+")):
                lines = [t for h in raw.hunks for tag, t in h.lines if tag in keep]
                if lines:
                    sides.append("\n".join(lines))
    start = time.perf_counter()
    for text in sides:
        highlight(text, get_lexer_by_name("python", stripnl=False), HtmlFormatter())
    return (time.perf_counter() - start) * 1000


def whole_page_ms(diffs: dict[str, str]) -> tuple[float, int, int]:
    """The workspace page of a task whose candidates carry `diffs`, their HTML built as the
    worker builds it: (median ms of RUNS GETs, queries of the last, bytes of the last)."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from bench.submit_load import make_data
    from tasks.generation_services import candidate_diff_build
    from tasks.models import Candidate, Task

    person = make_data(1, 1, prefix=f"bench-w-{os.getpid()}-")[0]
    task = Task.objects.get(pk=person["tasks"][0])
    for slot, diff in diffs.items():
        candidate = Candidate.objects.get(turn__task=task, slot=slot)
        Candidate.objects.filter(pk=candidate.pk).update(
            diff=diff, raw_answer=f"```diff\n{diff}```\n"
        )
        candidate_diff_build(candidate_id=candidate.pk)
    client = Client(SERVER_NAME="localhost")
    client.force_login(User.objects.get(pk=task.contractor_id))
    url = reverse("tasks:detail", args=[task.pk])
    times = []
    for _ in range(RUNS + 1):  # the first warms the templates
        with CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    return statistics.median(times[1:]), len(ctx.captured_queries), len(response.content)


def main() -> int:
    _setup.setup()
    import gzip

    from django.db import connection
    from django.template.loader import render_to_string
    from django.test.utils import CaptureQueriesContext

    from tasks.diff_html import diff_file_html, diff_page

    diffs = {"A": synthetic_diff(SEED), "B": synthetic_diff(SEED + 1000)}
    # Candidate ids nobody else uses, fresh per process: the first build always misses.
    base_id = 2_000_000_000 + (os.getpid() % 100_000) * 10
    ids = {"A": base_id + 1, "B": base_id + 2}
    print(f"machine:  {_setup.machine()}")
    print(f"cache:    {cache_description()}")

    def page(candidate_ids: dict[str, int], layout: str = "unified") -> tuple[float, list, list]:
        start = time.perf_counter()
        views, html = [], []
        for slot, diff in diffs.items():
            view = diff_page(candidate_id=candidate_ids[slot], diff=diff, layout=layout)
            html.append(
                render_to_string(
                    "tasks/_diff.html",
                    {"view": view, "slot": slot, "candidate_id": candidate_ids[slot]},
                )
            )
            views.append(view)
        return (time.perf_counter() - start) * 1000, views, html

    # Warm imports (lexers, templates) on another diff, so neither side pays them.
    page({"A": base_id + 5, "B": base_id + 6})
    # Interleaved, fresh candidate ids each time (every build misses): the machine's load
    # moves both sides alike; the ratio compares the fastest of each.
    raw_runs, first_runs = [], []
    for run in range(FIRST_RUNS):
        raw_runs.append(raw_pygments_ms(diffs))
        fresh = {"A": base_id + 100 + 2 * run, "B": base_id + 101 + 2 * run}
        first_runs.append(page(fresh)[0])
    raw_ms, first_ms = min(raw_runs), min(first_runs)
    _ms, views, first_html = page(ids)
    cached, lazy = [], []
    for _ in range(RUNS):
        ms, _views, html = page(ids)
        cached.append(ms)
        start = time.perf_counter()
        diff_file_html(candidate_id=ids["A"], diff=diffs["A"], number=30)
        lazy.append((time.perf_counter() - start) * 1000)
    split_ms, _views, split_html = page(ids, layout="split")
    initial = sum(len(h.encode()) for h in html)
    initial_split = sum(len(h.encode()) for h in split_html)
    gz = sum(len(gzip.compress(h.encode(), 6)) for h in html)
    full = sum(len(b.encode()) for v in views for b in v.bodies.values())

    one_file = synthetic_diff(SEED).split("--- a/src/pkg1/")[0]
    queries = {}
    for label, diff in (("1 file", one_file), ("40 files", diffs["A"])):
        with CaptureQueriesContext(connection) as ctx:
            diff_page(candidate_id=base_id + 7, diff=diff)
            diff_page(candidate_id=base_id + 7, diff=diff)
        queries[label] = len(ctx.captured_queries)

    for slot, view in zip(diffs, views, strict=True):
        print(
            f"input {slot}:  {view.files_changed} files, +{view.added} −{view.removed} "
            f"({view.added + view.removed:,} changed lines), {len(diffs[slot]) / 1024:.0f} KiB "
            f"diff; {len(view.bodies)} files sent with the page"
        )
    print()
    ratio = first_ms / raw_ms
    _setup.print_table(
        ["both candidates", "runs", "median", "min", "max"],
        [[label, len(values), statistics.median(values), min(values), max(values)]
           for label, values in (("raw Pygments of the same text (ms)", raw_runs),
                                 ("first view: build + store + render (ms)", first_runs),
                                 ("cached: read + render (ms)", cached),
                                 ("one lazily loaded file, cached (ms)", lazy))]
        + [["cached, split layout (ms)", 1, split_ms, split_ms, split_ms]],
    )  # fmt: skip
    print()
    _setup.print_table(
        ["initial HTML of both diffs", "bytes"],
        [["unified, uncompressed", f"{initial:,}"], ["split, uncompressed", f"{initial_split:,}"],
         ["unified, gzip -6", f"{gz:,}"], ["first files only (bodies)", f"{full:,}"]],
    )  # fmt: skip
    print(
        f"\nfirst view / raw Pygments (fastest of {FIRST_RUNS} each): {ratio:.2f}x; queries: {queries}"
    )
    page_ms, page_queries, page_bytes = whole_page_ms(diffs)
    print(
        f"whole workspace page, cached (median of {RUNS}): {page_ms:.1f} ms, "
        f"{page_queries} queries, {page_bytes:,} bytes"
    )
    cached_ms = statistics.median(cached)
    changed = all(v.added + v.removed == CHANGED_LINES and v.files_changed == FILES for v in views)
    return _setup.verdict(
        [(f"each candidate has {FILES} files and {CHANGED_LINES:,} changed lines", changed),
         (f"first view <= 1.3x raw Pygments ({ratio:.2f}x)", ratio <= 1.3),
         (f"cached read + render of both <= {TARGET_CACHED_MS:.0f} ms (median {cached_ms:.1f} ms)",
          cached_ms <= TARGET_CACHED_MS),
         (f"cached whole page <= {TARGET_CACHED_MS:.0f} ms (median {page_ms:.1f} ms)",
          page_ms <= TARGET_CACHED_MS),
         (f"initial HTML <= 1 MB ({initial:,} / {initial_split:,} bytes)",
          max(initial, initial_split) <= 1_000_000),
         (f"no queries for 1 or 40 files ({queries})", set(queries.values()) == {0})]
    )  # fmt: skip


if __name__ == "__main__":
    _setup.finish(main())
