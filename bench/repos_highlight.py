"""Highlighting a 5,000-line Python file for the browse page: first render, then from cache.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marlin_bench .venv/bin/python -m bench.repos_highlight

Times highlight_file (Pygments, no cache) and highlight_file_cached twice per run: once a
miss (a fresh blob id each run: highlight + store) and once a hit (read back). The cache is
the one the settings configure: Redis when REDIS_URL is set, else files under var/cache.
Target: a cached render (hit) takes <= 50 ms (median of the runs); the first render has no
target and is reported for information. Exits 1 when missed.
"""

from __future__ import annotations

import hashlib
import os
import random
import statistics
import time

from bench import _setup

LINES = 5_000
RUNS = 5
SEED = 20261125
TARGET_HIT_MS = 50.0
PATH = "src/marlin_bench/generated_module.py"

_NAMES = [
    "repository", "catalogue", "request", "response", "payload", "record", "session", "cursor",
    "buffer", "candidate", "review", "score", "token", "handler", "parser", "config", "limit",
    "window", "offset", "batch", "stream", "result", "status", "worker", "queue", "event",
]  # fmt: skip
_TYPES = ["int", "str", "bytes", "float", "bool", "dict[str, Any]", "list[str]", "Path | None"]


def python_source(lines: int, seed: int) -> str:
    """A plausible module of `lines` lines: classes, methods, docstrings, comments, literals."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data
    out = [
        '"""Generated for the highlighting benchmark: realistic shapes, meaningless logic."""',
        "",
        "from __future__ import annotations",
        "",
        "import asyncio",
        "import json",
        "import logging",
        "import re",
        "from dataclasses import dataclass, field",
        "from pathlib import Path",
        "from typing import Any",
        "",
        "logger = logging.getLogger(__name__)",
        'PATTERN = re.compile(r"^(?P<owner>[\\w.-]+)/(?P<name>[\\w.-]+)$")',
        "",
    ]

    def name() -> str:
        return "_".join(rng.sample(_NAMES, rng.randint(1, 3)))

    def function(indent: str, method: bool) -> list[str]:
        names = list(dict.fromkeys(name() for _ in range(rng.randint(0, 3))))
        args = [f"{arg}: {rng.choice(_TYPES)}" for arg in names]
        params = ", ".join((["self"] if method else []) + args)
        kind = "async def" if rng.random() < 0.15 else "def"
        body = [
            *([f"{indent}@property"] if method and not args and rng.random() < 0.5 else []),
            f"{indent}{kind} {name()}({params}) -> {rng.choice(_TYPES)}:",
            f'{indent}    """{name().replace("_", " ").capitalize()}, checked and logged."""',
        ]
        inner = indent + "    "
        for _ in range(rng.randint(3, 14)):
            roll = rng.random()
            var = name()
            if roll < 0.15:
                body.append(f"{inner}# {name().replace('_', ' ')}: keep this in step with the API")
            elif roll < 0.3:
                body.append(
                    f'{inner}{var} = f"{{{rng.choice(_NAMES)}!r}} at {{0x{rng.randint(0, 65535):04x}}}"'
                )
            elif roll < 0.45:
                body += [f"{inner}if {var} is None or len({var}) > {rng.randint(1, 999)}:",
                         f'{inner}    logger.warning("%s is out of range", {var!r})',
                         f"{inner}    return None"]  # fmt: skip
            elif roll < 0.55:
                body += [f"{inner}try:",
                         f"{inner}    {var} = json.loads(Path({rng.choice(_NAMES)!r}).read_text())",
                         f"{inner}except (OSError, ValueError) as exc:",
                         f"{inner}    raise RuntimeError(f'cannot read {{exc}}') from exc"]  # fmt: skip
            elif roll < 0.65:
                body.append(f"{inner}{var} = {{{rng.choice(_NAMES)!r}: {rng.random():.4f}, "
                            f"'count': {rng.randint(0, 10**6)}, 'ok': {rng.choice(['True', 'False'])}}}")  # fmt: skip
            elif roll < 0.75 and kind == "def":
                body += [f"{inner}for index, item in enumerate({var} or []):",
                         f"{inner}    yield index, [x * {rng.randint(2, 9)} for x in item if x]"]  # fmt: skip
            elif roll < 0.85 and kind == "async def":
                body.append(f"{inner}await asyncio.sleep({rng.random():.3f})")
            else:
                body.append(f"{inner}{var} = sorted({rng.choice(_NAMES)}, key=lambda v: (v.{name()}, -v.{name()}))")  # fmt: skip
        body += [f"{inner}return {name()}", ""]
        return body

    def cls() -> list[str]:
        title = "".join(part.capitalize() for part in name().split("_"))
        block = [
            "",
            "@dataclass",
            f"class {title}:",
            f'    """A {title} as the service sees it."""',
            "",
        ]
        for _ in range(rng.randint(2, 6)):
            block.append(f"    {name()}: {rng.choice(_TYPES)} = field(default_factory=dict)")
        block.append("")
        for _ in range(rng.randint(2, 7)):
            block += function("    ", method=True)
        return block

    while True:
        block = cls() if rng.random() < 0.4 else ["", *function("", method=False)]
        if len(out) + len(block) > lines:
            break
        out += block
    out += [f"# padding line {i}" for i in range(lines - len(out))]
    return "\n".join(out) + "\n"


def cache_description() -> str:
    from django.conf import settings

    config = settings.CACHES["default"]
    backend = config["BACKEND"].rsplit(".", 1)[-1]
    if "redis" in config["BACKEND"].lower():
        # Host, port and database only: never the credentials of the URL.
        from urllib.parse import urlsplit

        url = urlsplit(config["LOCATION"])
        return f"{backend} at {url.hostname}:{url.port or 6379}{url.path or '/0'} (REDIS_URL set)"
    return f"{backend} at {config['LOCATION']} (REDIS_URL not set)"


def main() -> int:
    _setup.setup()
    from django.core.cache import cache

    from repos import highlighting

    source = python_source(LINES, SEED)
    compile(source, PATH, "exec")  # the generated module is valid Python
    data = source.encode()
    print(f"machine:  {_setup.machine()}")
    print(f"cache:    {cache_description()}")
    print(f"input:    {PATH}, {source.count(chr(10)):,} lines, {len(data) / 1024:.0f} KiB")

    start = time.perf_counter()
    reference = highlighting.highlight_file(path=PATH, text=source)
    first_call_ms = (time.perf_counter() - start) * 1000

    plain, miss, hit, keys = [], [], [], []
    lexer = highlighting.lexer_for(PATH).name
    for run in range(RUNS):
        start = time.perf_counter()
        highlighting.highlight_file(path=PATH, text=source)
        plain.append((time.perf_counter() - start) * 1000)

        # A blob id never seen before: the first call misses, the second hits.
        oid = hashlib.sha1(f"{os.getpid()}:{time.time_ns()}:{run}".encode()).hexdigest()  # noqa: S324
        keys.append(f"hl:v{highlighting._CACHE_VERSION}:{oid}:{lexer}")
        start = time.perf_counter()
        first = highlighting.highlight_file_cached(path=PATH, oid=oid, data=data)
        miss.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        second = highlighting.highlight_file_cached(path=PATH, oid=oid, data=data)
        hit.append((time.perf_counter() - start) * 1000)
        if not (first == second == reference):
            print("the cached HTML differs from the uncached one")
            return 1
    stored = all(cache.get(key) is not None for key in keys)
    cache.delete_many(keys)

    print(f"output:   {len(reference) / 2**20:.2f} MiB of HTML\n")
    _setup.print_table(
        ["call (ms)", "runs", "median", "min", "max"],
        [["highlight_file, first call in process", 1, first_call_ms, first_call_ms, first_call_ms]]
        + [[label, len(values), statistics.median(values), min(values), max(values)]
           for label, values in (("highlight_file (no cache)", plain),
                                 ("highlight_file_cached, miss (render + store)", miss),
                                 ("highlight_file_cached, hit", hit))],
    )  # fmt: skip
    hit_ms = statistics.median(hit)
    return _setup.verdict(
        [("every render was stored in the cache", stored),
         (f"cached render (hit) <= {TARGET_HIT_MS:.0f} ms (median {hit_ms:.1f} ms)",
          hit_ms <= TARGET_HIT_MS)]
    )  # fmt: skip


if __name__ == "__main__":
    _setup.finish(main())
