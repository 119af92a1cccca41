"""A diff view's HTML, built as Python strings (no template per line), cached per diff.

The workspace shows thousands of diff lines; rendering each through Django's template engine
cost most of the page (and localised every line number). Here each changed file becomes one
string per layout ("unified" or "split"), from the lines tasks.diffview built (each side of
a file lexed once). Every piece of untrusted text is escaped by construction: line HTML comes
from repos.highlighting (html.escape per token) or tasks.diffview.mark_words, and paths,
hunk headers and anchors go through html.escape here. Line numbers are plain str(int).

Only one layout goes to the page, and only its first files (up to EAGER_LINES lines): the
rest are placeholders that load (htmx) when scrolled to or opened. The worker builds all of
it when it stores a candidate (candidate_diff_prebuild), so even the first view reads the
cache; a view that misses builds it the same way.
"""

from __future__ import annotations

import dataclasses
import gc
from dataclasses import dataclass, field
from html import escape
from typing import Literal

from django.core.cache import cache
from django.utils.safestring import SafeString, mark_safe

from tasks import diffview
from tasks.blinding import identity_names, mask_names
from tasks.diffview import DiffFile, DiffHunk, DiffLine, DiffView, TreeNode

Layout = Literal["unified", "split"]
LAYOUTS: tuple[Layout, ...] = ("unified", "split")
# The cookie the page's layout toggle sets (static/js/workspace.js); the server renders that one.
LAYOUT_COOKIE = "marlin_diff_view"
CACHE_VERSION = 1
# Files are sent with the page until this many of their lines are (at least the first file,
# unless it is large); the rest load when they come into view.
EAGER_LINES = 400
EAGER_FILES = 6

_UNIFIED_HEAD = (
    '<thead class="visually-hidden"><tr><th scope="col">Old line</th>'
    '<th scope="col">New line</th><th scope="col">Code</th></tr></thead>'
)
_SPLIT_HEAD = (
    '<thead class="visually-hidden"><tr><th scope="col">Old line</th><th scope="col">Old code'
    '</th><th scope="col">New line</th><th scope="col">New code</th></tr></thead>'
)
_EMPTY_HALF = '<td class="d-no d-empty"></td><td class="d-code d-empty"></td>'


def layout_of(request) -> Layout:
    """The layout a request asks for: ?layout=, else the toggle's cookie, else unified."""
    asked = request.GET.get("layout") or request.COOKIES.get(LAYOUT_COOKIE, "")
    return "split" if asked == "split" else "unified"


@dataclass
class DiffPage:
    """What a page shows of one diff: the files' summaries (no lines), the layout, and the
    HTML of the files sent with the page (by file number); the others load later."""

    files: list[DiffFile]
    added: int
    removed: int
    files_changed: int
    key: str
    layout: Layout = "unified"
    ignores_whitespace: bool = False
    tree: TreeNode | None = None
    bodies: dict[int, str] = field(default_factory=dict)

    @property
    def entries(self) -> list[tuple[DiffFile, SafeString | None]]:
        """(file, its HTML) in order; None for a file that loads when opened or scrolled to."""
        return [
            (f, mark_safe(self.bodies[f.number]) if f.number in self.bodies else None)  # noqa: S308 - built escaped here
            for f in self.files
        ]


# --- Building -------------------------------------------------------------------------------


def _no_link(anchor: str, side: str, number: int | None) -> str:
    if number is None:
        return ""
    ident = f"{anchor}-{side}{number}"
    return f'<a id="{ident}" href="#{ident}">{number}</a>'


def _expand_slot(file: DiffFile, index: int, hunk: DiffHunk) -> str:
    if not (file.can_expand and hunk.gap_end >= hunk.gap_start):
        return ""
    return (
        f'<span class="d-expand" data-hunk="{index}" data-gap-start="{hunk.gap_start}" '
        f'data-gap-end="{hunk.gap_end}"></span>'
    )


def _half(line: DiffLine | None, anchor: str, side: str) -> str:
    if line is None:
        return _EMPTY_HALF
    number = line.old_no if side == "sL" else line.new_no
    return (
        f'<td class="d-no d-{line.kind}">{_no_link(anchor, side, number)}</td>'
        f'<td class="d-code d-{line.kind}">{line.html}</td>'
    )


def _rows(hunk: DiffHunk, anchor: str, layout: Layout) -> list[str]:
    if layout == "split":
        return [
            f"<tr>{_half(row.left, anchor, 'sL')}{_half(row.right, anchor, 'sR')}</tr>"
            for row in hunk.split_rows
        ]
    return [
        f'<tr class="d-{line.kind}"><td class="d-no">{_no_link(anchor, "L", line.old_no)}'
        f'</td><td class="d-no">{_no_link(anchor, "R", line.new_no)}</td>'
        f'<td class="d-code">{line.html}</td></tr>'
        for line in hunk.lines
    ]


# Per layout: the table's class, label and head; the columns left of the code in a hunk
# header or the tail row, and those the code spans.
_LAYOUT_PARTS = {
    "unified": ("diff-unified", "unified", _UNIFIED_HEAD, ' colspan="2"', ""),
    "split": ("diff-split", "side by side", _SPLIT_HEAD, "", ' colspan="3"'),
}


def file_body_html(file: DiffFile, layout: Layout) -> str:
    """One changed file's table in `layout`, as escaped HTML (line HTML is escaped already,
    by repos.highlighting; every other piece of the diff goes through html.escape here)."""
    table, label, head, left, code = _LAYOUT_PARTS[layout]
    anchor = escape(file.anchor)
    out = [
        f'<div class="diff-body highlight" data-layout="{layout}"><table class="{table}" '
        f'aria-label="{escape(file.path)}, {label}">{head}'
    ]
    last = len(file.hunks) - 1
    for index, hunk in enumerate(file.hunks):
        out.append("<tbody>")
        if hunk.header:
            out.append(
                f'<tr class="d-hunk"><td{left}>{_expand_slot(file, index, hunk)}</td><th '
                f'scope="rowgroup"{code} class="d-code">{escape(hunk.header)}</th></tr>'
            )
        out.extend(_rows(hunk, anchor, layout))
        if index == last and file.can_expand:
            out.append(
                f'<tr class="d-tail"><td{left}><span class="d-expand" data-tail data-gap-start='
                f'"{file.tail_start}"></span></td><td{code} class="d-code"></td></tr>'
            )
        out.append("</tbody>")
    out.append("</table></div>")
    return "".join(out)


def _summary(file: DiffFile) -> DiffFile:
    # The page needs a file's names, counts and anchor, not its lines; its number of rows
    # sizes the placeholder of a file sent later, so the page keeps its length.
    return dataclasses.replace(file, hunks=[], rows=sum(len(h.lines) + 1 for h in file.hunks))


def _line_count(file: DiffFile) -> int:
    return sum(len(h.lines) for h in file.hunks)


def _eager_numbers(files: list[DiffFile], sizes: list[int]) -> list[int]:
    numbers: list[int] = []
    total = 0
    for file, size in zip(files, sizes, strict=True):
        if numbers and (total + size > EAGER_LINES or len(numbers) >= EAGER_FILES):
            break
        if not file.is_large:
            numbers.append(file.number)
            total += size
    return numbers


def _base_key(*, prefix: str, digest: str, ignore_whitespace: bool, expandable: bool) -> str:
    key = f"diffhtml:v{CACHE_VERSION}:{prefix}:{digest}"
    return key + (":w" if ignore_whitespace else "") + ("" if expandable else ":fixed")


def _build_and_store(
    *, base: str, candidate_id: int, diff: str, ignore_whitespace: bool, anchor_prefix: str,
    expandable: bool,
) -> tuple[dict, dict[str, list[str]]]:  # fmt: skip
    """Build every file of both layouts, store them; returns (meta, bodies by layout).

    The parsed view itself (tasks.diffview.build_diff_view's cache entry, which the "show
    more lines" and comment endpoints read) is not stored here: pickling its tens of
    thousands of objects would cost a view that misses more than the HTML. The worker's
    candidate_diff_prebuild stores it too."""
    view: DiffView = diffview.build_diff_view(
        candidate_id=candidate_id, diff=diff, ignore_whitespace=ignore_whitespace,
        anchor_prefix=anchor_prefix, expandable=expandable, store=False,
    )  # fmt: skip
    sizes = [_line_count(f) for f in view.files]
    eager = _eager_numbers(view.files, sizes)
    files = [_summary(f) for f in view.files]
    meta = {
        "files": files,
        "added": view.added,
        "removed": view.removed,
        "key": view.key,
        "eager": eager,
        "tree": diffview._tree(files) if view.tree is not None else None,
    }
    values: dict[str, object] = {f"{base}:meta": meta}
    built: dict[str, list[str]] = {}
    for layout in LAYOUTS:
        bodies = built[layout] = [file_body_html(f, layout) for f in view.files]
        values[f"{base}:{layout}:head"] = {n: bodies[n] for n in eager}
        values.update({f"{base}:{layout}:f{n}": body for n, body in enumerate(bodies)})
    cache.set_many(values, diffview.CACHE_SECONDS)
    return meta, built


def _cache_get_many(keys: list[str]) -> dict:
    # As in diffview.build_diff_view: unpickling many objects sets off the cyclic collector.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return cache.get_many(keys)
    finally:
        if was_enabled:
            gc.enable()


def diff_page(
    *, candidate_id: int, diff: str, layout: Layout = "unified", ignore_whitespace: bool = False,
    anchor_prefix: str = "", expandable: bool = True, eager_all: bool = False,
) -> DiffPage:  # fmt: skip
    """The page's part of a diff in one layout: from the cache (two keys, one round trip), or
    built and stored when missing. `eager_all` sends every file (a view with no endpoint to
    load files from later, e.g. the A vs B diff, which is itself loaded on demand)."""
    base = _base_key(
        prefix=anchor_prefix or f"c{int(candidate_id)}", digest=diffview.diff_digest(diff),
        ignore_whitespace=ignore_whitespace, expandable=expandable,
    )  # fmt: skip
    build = {
        "base": base, "candidate_id": candidate_id, "diff": diff, "anchor_prefix": anchor_prefix,
        "ignore_whitespace": ignore_whitespace, "expandable": expandable,
    }  # fmt: skip
    found = _cache_get_many([f"{base}:meta", f"{base}:{layout}:head"])
    meta, head = found.get(f"{base}:meta"), found.get(f"{base}:{layout}:head")
    bodies: dict[int, str] = dict(head) if isinstance(head, dict) else {}
    if eager_all and isinstance(meta, dict) and isinstance(head, dict):
        rest = [n for n in range(len(meta["files"])) if n not in bodies]
        bodies.update(_file_bodies(base, layout, rest))
        if len(bodies) < len(meta["files"]):
            meta = None  # some file was evicted: build them all again
    if not isinstance(meta, dict) or not isinstance(head, dict):
        meta, built = _build_and_store(**build)
        numbers = range(len(built[layout])) if eager_all else meta["eager"]
        bodies = {n: built[layout][n] for n in numbers}
    return DiffPage(
        files=meta["files"], added=meta["added"], removed=meta["removed"],
        files_changed=len(meta["files"]), key=meta["key"], layout=layout,
        ignores_whitespace=ignore_whitespace, tree=meta["tree"], bodies=bodies,
    )  # fmt: skip


def _file_bodies(base: str, layout: Layout, numbers: list[int]) -> dict[int, str]:
    keys = {f"{base}:{layout}:f{n}": n for n in numbers}
    found = cache.get_many(list(keys))
    return {keys[k]: v for k, v in found.items() if isinstance(v, str)}


def diff_file_html(
    *, candidate_id: int, diff: str, number: int, layout: Layout = "unified",
    ignore_whitespace: bool = False, anchor_prefix: str = "", expandable: bool = True,
) -> tuple[DiffFile, SafeString] | None:  # fmt: skip
    """One file of the diff (by number) in `layout`, with its summary; None if there is no
    such file. From the cache, or built (all files) when missing."""
    base = _base_key(
        prefix=anchor_prefix or f"c{int(candidate_id)}", digest=diffview.diff_digest(diff),
        ignore_whitespace=ignore_whitespace, expandable=expandable,
    )  # fmt: skip
    found = cache.get_many([f"{base}:meta", f"{base}:{layout}:f{number}"])
    meta, body = found.get(f"{base}:meta"), found.get(f"{base}:{layout}:f{number}")
    if not isinstance(meta, dict) or (number < len(meta["files"]) and not isinstance(body, str)):
        meta, built = _build_and_store(
            base=base, candidate_id=candidate_id, diff=diff, anchor_prefix=anchor_prefix,
            ignore_whitespace=ignore_whitespace, expandable=expandable,
        )  # fmt: skip
        body = built[layout][number] if number < len(built[layout]) else None
    if number >= len(meta["files"]) or body is None:
        return None
    return meta["files"][number], mark_safe(body)  # noqa: S308 - built escaped here


# --- Candidates ----------------------------------------------------------------------------


def _masked(candidate) -> str:
    # As tasks.diffview.candidate_diff_view: a model's endpoint name or id is masked.
    return mask_names(candidate.diff, names=identity_names(candidate))


def candidate_diff_page(
    candidate, *, layout: Layout = "unified", ignore_whitespace: bool = False
) -> DiffPage:
    return diff_page(
        candidate_id=candidate.pk, diff=_masked(candidate), layout=layout,
        ignore_whitespace=ignore_whitespace,
    )  # fmt: skip


def candidate_diff_file(
    candidate, *, number: int, layout: Layout = "unified", ignore_whitespace: bool = False
) -> tuple[DiffFile, SafeString] | None:
    return diff_file_html(
        candidate_id=candidate.pk, diff=_masked(candidate), number=number, layout=layout,
        ignore_whitespace=ignore_whitespace,
    )  # fmt: skip


def attach_diff_pages(candidates, *, layout: Layout = "unified") -> None:
    """Give every finished candidate its diff as the page shows it (candidate.diff_view)."""
    for candidate in candidates:
        if candidate.status == candidate.Status.SUCCEEDED:
            candidate.diff_view = candidate_diff_page(candidate, layout=layout)


def candidate_diff_prebuild(candidate) -> None:
    """Build and store the candidate's diff HTML (both layouts, whitespace shown) so its
    first view reads the cache. Run by the worker after it stores the candidate."""
    if candidate.status == candidate.Status.SUCCEEDED:
        candidate_diff_page(candidate)
        diffview.candidate_diff_view(candidate)  # for "show more lines" and comments


def candidate_diff_is_cached(candidate, *, layout: Layout = "unified") -> bool:
    """Whether the page's part of the candidate's diff (whitespace shown) is in the cache."""
    base = _base_key(
        prefix=f"c{int(candidate.pk)}", digest=diffview.diff_digest(_masked(candidate)),
        ignore_whitespace=False, expandable=True,
    )  # fmt: skip
    found = cache.get_many([f"{base}:meta", f"{base}:{layout}:head"])
    return len(found) == 2
