"""A candidate's unified diff as files, hunks and numbered lines, highlighted per line.

The diff is untrusted model output: every character reaches the page through html.escape
(repos.highlighting.highlight_lines) or Django's autoescaping. Parsing never raises: a diff
that does not parse becomes one "unparsed" file shown as escaped text.
"""

from __future__ import annotations

import gc
import hashlib
import html
import re
from dataclasses import dataclass, field
from typing import Literal

from django.core.cache import cache
from django.utils.safestring import SafeString, mark_safe

from repos import highlighting
from tasks.blinding import identity_names, mask_names

CACHE_VERSION = 1
CACHE_SECONDS = 7 * 24 * 3600
LARGE_FILE_LINES = 1_500

LineKind = Literal["context", "add", "del", "no-newline"]
FileStatus = Literal["added", "removed", "modified", "renamed", "unparsed"]

_HUNK_RE = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)")
# Extended git header lines that may sit between files; they carry nothing we show.
_GIT_HEADER_PREFIXES = (
    "diff --git ", "index ", "old mode ", "new mode ", "deleted file mode ", "new file mode ",
    "similarity index ", "dissimilarity index ", "rename from ", "rename to ", "copy from ",
    "copy to ", "Binary files ",
)  # fmt: skip


@dataclass
class DiffLine:
    kind: LineKind
    old_no: int | None
    new_no: int | None
    html: SafeString


@dataclass
class SplitRow:
    left: DiffLine | None
    right: DiffLine | None


@dataclass
class DiffHunk:
    header: str
    lines: list[DiffLine] = field(default_factory=list)
    split_rows: list[SplitRow] = field(default_factory=list)


@dataclass
class DiffFile:
    old_path: str
    new_path: str
    path: str
    status: FileStatus
    added: int
    removed: int
    hunks: list[DiffHunk]
    anchor: str
    is_large: bool


@dataclass
class DiffView:
    files: list[DiffFile]
    added: int
    removed: int
    files_changed: int
    # Names this exact diff of this candidate: the template caches its rendering under it,
    # so it is required (an empty key shared by two views would show one for the other).
    key: str


class _Unparsable(ValueError):
    pass


@dataclass
class _RawHunk:
    header: str
    old_start: int
    new_start: int
    # (kind, text) with kind one of " ", "+", "-", "\\"
    lines: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _RawFile:
    old_path: str
    new_path: str
    hunks: list[_RawHunk] = field(default_factory=list)


def build_diff_view(*, candidate_id: int, diff: str) -> DiffView:
    """The parsed, highlighted diff, from the cache when this exact diff was built before."""
    digest = hashlib.sha256(diff.encode("utf-8", errors="surrogatepass")).hexdigest()[:16]
    key = f"diffview:v{CACHE_VERSION}:{candidate_id}:{digest}"
    # Unpickling allocates tens of thousands of objects, which sets off the cyclic garbage
    # collector over and over (about 8x the time of the load itself); none of them is garbage.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        view = cache.get(key)
    finally:
        if gc_was_enabled:
            gc.enable()
    if isinstance(view, DiffView):
        return _mark_safe(view)
    view = _build(candidate_id=candidate_id, diff=diff, key=key)
    cache.set(key, view, CACHE_SECONDS)
    return view


def _mark_safe(view: DiffView) -> DiffView:
    # Only our own escaped HTML is ever cached; marking it safe again is a no-op if pickle
    # kept SafeString, and restores it if a cache backend handed back plain str.
    for file in view.files:
        for hunk in file.hunks:
            for line in hunk.lines:
                if not isinstance(line.html, SafeString):
                    line.html = mark_safe(line.html)  # noqa: S308 - escaped when built
    return view


def _build(*, candidate_id: int, diff: str, key: str) -> DiffView:
    try:
        raw_files = _parse(diff)
    except _Unparsable:
        files = [_unparsed_file(candidate_id, diff)]
    else:
        files = [_file(candidate_id, index, raw) for index, raw in enumerate(raw_files, start=1)]
    return DiffView(
        files=files,
        added=sum(f.added for f in files),
        removed=sum(f.removed for f in files),
        files_changed=len(files),
        key=key,
    )


def _split_lines(diff: str) -> list[str]:
    # Split on "\n" only: str.splitlines() also breaks on \x0b, \x1c, \u2028 …, which are
    # ordinary characters inside a diff line.
    lines = diff.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _path(header: str) -> str:
    path = header.split("\t", 1)[0].rstrip()
    if path == "/dev/null":
        return path
    return path[2:] if path.startswith(("a/", "b/")) else path


def _parse(diff: str) -> list[_RawFile]:
    lines = _split_lines(diff)
    files: list[_RawFile] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith(_GIT_HEADER_PREFIXES) or not line.strip():
            index += 1
            continue
        if not (line.startswith("--- ") and index + 1 < len(lines)):
            raise _Unparsable(f"line {index + 1}")
        if not lines[index + 1].startswith("+++ "):
            raise _Unparsable(f"line {index + 2}")
        current = _RawFile(old_path=_path(line[4:]), new_path=_path(lines[index + 1][4:]))
        files.append(current)
        index += 2
        while index < len(lines) and lines[index].startswith("@@"):
            index = _parse_hunk(lines, index, current)
        if not current.hunks:
            raise _Unparsable(f"no hunk for {current.new_path}")
    return files


def _parse_hunk(lines: list[str], index: int, current: _RawFile) -> int:
    """Reads the hunk at lines[index]; returns the index after it. Trusts the header's counts,
    as git does, and refuses a hunk whose body is shorter or longer than they say."""
    match = _HUNK_RE.fullmatch(lines[index])
    if not match:
        raise _Unparsable(f"hunk header at line {index + 1}")
    old_left = int(match.group(2) if match.group(2) is not None else 1)
    new_left = int(match.group(4) if match.group(4) is not None else 1)
    hunk = _RawHunk(
        header=lines[index], old_start=int(match.group(1)), new_start=int(match.group(3))
    )
    current.hunks.append(hunk)
    index += 1
    while index < len(lines) and (old_left > 0 or new_left > 0 or lines[index].startswith("\\")):
        line = lines[index]
        tag, text = line[:1], line[1:]
        if tag == "\\":
            hunk.lines.append(("\\", line))
        elif tag == "-" and old_left > 0:
            old_left -= 1
            hunk.lines.append(("-", text))
        elif tag == "+" and new_left > 0:
            new_left -= 1
            hunk.lines.append(("+", text))
        elif tag in (" ", "") and old_left > 0 and new_left > 0:
            # An empty line is a context line whose leading space was stripped (by an editor
            # or a copy and paste); git accepts it too.
            old_left -= 1
            new_left -= 1
            hunk.lines.append((" ", text))
        else:
            raise _Unparsable(f"line {index + 1}")
        index += 1
    if old_left or new_left:
        raise _Unparsable("diff ends inside a hunk")
    return index


def _file(candidate_id: int, index: int, raw: _RawFile) -> DiffFile:
    if raw.old_path == "/dev/null":
        status: FileStatus = "added"
        path = raw.new_path
    elif raw.new_path == "/dev/null":
        status, path = "removed", raw.old_path
    elif raw.old_path != raw.new_path:
        status, path = "renamed", f"{raw.old_path} → {raw.new_path}"
    else:
        status, path = "modified", raw.new_path
    # The lexer comes from the name the file has after the change (before, if removed).
    lexer_path = raw.old_path if status == "removed" else raw.new_path
    hunks = [_hunk(lexer_path, raw_hunk) for raw_hunk in raw.hunks]
    added = sum(1 for h in hunks for line in h.lines if line.kind == "add")
    removed = sum(1 for h in hunks for line in h.lines if line.kind == "del")
    return DiffFile(
        old_path=raw.old_path,
        new_path=raw.new_path,
        path=path,
        status=status,
        added=added,
        removed=removed,
        hunks=hunks,
        anchor=f"c{int(candidate_id)}-f{index}",
        is_large=added + removed > LARGE_FILE_LINES,
    )


def _hunk(path: str, raw: _RawHunk) -> DiffHunk:
    # Each side of the hunk is lexed as one text, so a string or comment spanning lines is
    # highlighted on every line it covers.
    old_text = [text for tag, text in raw.lines if tag in (" ", "-")]
    new_text = [text for tag, text in raw.lines if tag in (" ", "+")]
    old_html = highlighting.highlight_lines(path=path, text="\n".join(old_text)) if old_text else []
    new_html = highlighting.highlight_lines(path=path, text="\n".join(new_text)) if new_text else []
    old_no, new_no = raw.old_start, raw.new_start
    old_i = new_i = 0
    lines: list[DiffLine] = []
    for tag, text in raw.lines:
        if tag == " ":
            lines.append(DiffLine("context", old_no, new_no, mark_safe(new_html[new_i])))  # noqa: S308
            old_no, new_no, old_i, new_i = old_no + 1, new_no + 1, old_i + 1, new_i + 1
        elif tag == "-":
            lines.append(DiffLine("del", old_no, None, mark_safe(old_html[old_i])))  # noqa: S308
            old_no, old_i = old_no + 1, old_i + 1
        elif tag == "+":
            lines.append(DiffLine("add", None, new_no, mark_safe(new_html[new_i])))  # noqa: S308
            new_no, new_i = new_no + 1, new_i + 1
        else:
            lines.append(DiffLine("no-newline", None, None, mark_safe(html.escape(text))))  # noqa: S308
    return DiffHunk(header=raw.header, lines=lines, split_rows=_split_rows(lines))


def _split_rows(lines: list[DiffLine]) -> list[SplitRow]:
    """Side-by-side rows: context on both sides; a run of deletions and the additions that
    follow it paired row by row; a "no newline" marker stays on the side it belongs to."""
    rows: list[SplitRow] = []
    dels: list[DiffLine] = []
    adds: list[DiffLine] = []
    previous: DiffLine | None = None

    def flush() -> None:
        for i in range(max(len(dels), len(adds))):
            rows.append(
                SplitRow(dels[i] if i < len(dels) else None, adds[i] if i < len(adds) else None)
            )
        dels.clear()
        adds.clear()

    for line in lines:
        kind = line.kind
        if kind == "no-newline" and previous is not None and previous.kind in ("del", "add"):
            kind = previous.kind
        if kind == "del":
            if adds:  # deletions after additions start a new run
                flush()
            dels.append(line)
        elif kind == "add":
            adds.append(line)
        else:
            flush()
            rows.append(SplitRow(line, line))
        previous = line
    flush()
    return rows


def _unparsed_file(candidate_id: int, diff: str) -> DiffFile:
    lines = [
        DiffLine("context", None, None, mark_safe(html.escape(text)))  # noqa: S308
        for text in _split_lines(diff)
    ]
    hunk = DiffHunk(header="", lines=lines, split_rows=[SplitRow(line, line) for line in lines])
    return DiffFile(
        old_path="",
        new_path="",
        path="(diff could not be parsed)",
        status="unparsed",
        added=0,
        removed=0,
        hunks=[hunk],
        anchor=f"c{int(candidate_id)}-f1",
        is_large=len(lines) > LARGE_FILE_LINES,
    )


def attach_diff_views(candidates) -> None:
    """Give every finished candidate its parsed, highlighted diff (cached per diff)."""
    for candidate in candidates:
        if candidate.status == candidate.Status.SUCCEEDED:
            candidate.diff_view = candidate_diff_view(candidate)


def candidate_diff_view(candidate) -> DiffView:
    """The diff as people may see it: a model's endpoint name or id written into its code is
    masked (generic vendor words are left alone: they may be real identifiers)."""
    diff = mask_names(candidate.diff, names=identity_names(candidate))
    return build_diff_view(candidate_id=candidate.pk, diff=diff)
