"""A candidate's unified diff as files, hunks and numbered lines, highlighted per line.

The diff is untrusted model output: every character reaches the page through html.escape
(repos.highlighting.highlight_lines) or Django's autoescaping. Parsing never raises: a diff
that does not parse becomes one "unparsed" file shown as escaped text.
"""

from __future__ import annotations

import difflib
import gc
import hashlib
import html
import re
from dataclasses import dataclass, field
from typing import Literal

from django.conf import settings
from django.core.cache import cache
from django.utils.safestring import SafeString, mark_safe

from marlin.exceptions import ApplicationError
from repos import highlighting
from repos import services as repo_services
from tasks.blinding import identity_names, mask_names

CACHE_VERSION = 2
CACHE_SECONDS = 7 * 24 * 3600
LARGE_FILE_LINES = 1_500
# "Show more lines" reads at most this many unchanged lines per request.
CONTEXT_MAX_LINES = 500
# More changed files than this and the file list becomes a tree grouped by folder.
TREE_MIN_FILES = 8
# Intra-line marks: pairs less alike than this are shown as wholly changed (marks would be
# noise), and longer lines are left alone (the token diff is quadratic in the worst case).
WORD_MIN_RATIO = 0.5
WORD_MAX_CHARS = 400

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
    # The unchanged old lines between the previous hunk (or the file's start) and this one,
    # which "show more lines" reads from the pinned commit; gap_end < gap_start when none.
    gap_start: int = 0
    gap_end: int = -1
    # new line number minus old line number of every unchanged line in that gap.
    gap_offset: int = 0


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
    number: int = 0  # 0-based position in the view (the lazy-load and context endpoints')
    # Whether unchanged lines around the hunks can be read from the pinned commit: a file
    # that existed before and whose old side is the pinned commit (not the A vs B diff).
    can_expand: bool = False
    # The first old line after the last hunk, and the offset of the lines from there on.
    tail_start: int = 0
    tail_offset: int = 0
    rows: int = 0  # table rows, set on the summaries a page keeps (tasks.diff_html)

    @property
    def result_path(self) -> str:
        """The path after the change (before it, for a removed file)."""
        return self.old_path if self.status == "removed" else self.new_path

    @property
    def basename(self) -> str:
        """The file's name in the file tree, under its folder."""
        return self.result_path.rpartition("/")[2]


@dataclass
class TreeNode:
    """A folder of the file tree (files are DiffFile leaves), with summed +/- counts."""

    name: str
    dirs: list[TreeNode] = field(default_factory=list)
    files: list[DiffFile] = field(default_factory=list)
    added: int = 0
    removed: int = 0


@dataclass
class DiffView:
    files: list[DiffFile]
    added: int
    removed: int
    files_changed: int
    # Names this exact diff of this candidate: the template caches its rendering under it,
    # so it is required (an empty key shared by two views would show one for the other).
    key: str
    ignores_whitespace: bool = False
    tree: TreeNode | None = None  # set when more than TREE_MIN_FILES files changed
    # The layout templates/tasks/_diff.html shows this view in (every file, with the page);
    # pages show a tasks.diff_html.DiffPage instead, which sends the first files only.
    layout: Literal["unified", "split"] = "unified"

    @property
    def entries(self) -> list[tuple[DiffFile, SafeString]]:
        from tasks.diff_html import file_body_html  # it builds on this module

        return [(f, mark_safe(file_body_html(f, self.layout))) for f in self.files]  # noqa: S308 - escaped when built


class _Unparsable(ValueError):
    pass


@dataclass
class _RawHunk:
    header: str
    old_start: int
    new_start: int
    old_count: int = 0
    new_count: int = 0
    # (kind, text) with kind one of " ", "+", "-", "\\"
    lines: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _RawFile:
    old_path: str
    new_path: str
    hunks: list[_RawHunk] = field(default_factory=list)


def diff_digest(diff: str) -> str:
    return hashlib.sha256(diff.encode("utf-8", errors="surrogatepass")).hexdigest()[:16]


def build_diff_view(
    *,
    candidate_id: int,
    diff: str,
    ignore_whitespace: bool = False,
    anchor_prefix: str = "",
    expandable: bool = True,
    store: bool = True,
) -> DiffView:
    """The parsed, highlighted diff, from the cache when this exact diff was built before
    (and stored there when built, unless `store` is False).

    `ignore_whitespace` shows a change of whitespace only as an unchanged line (git diff -w).
    `anchor_prefix` names the view's anchors (default "c<candidate_id>"); `expandable` is
    False when the old side is not the pinned commit, so no context can be read for it.
    """
    prefix = anchor_prefix or f"c{int(candidate_id)}"
    key = f"diffview:v{CACHE_VERSION}:{anchor_prefix or candidate_id}:{diff_digest(diff)}"
    key += (":w" if ignore_whitespace else "") + ("" if expandable else ":fixed")
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
    view = _build(
        prefix=prefix, diff=diff, key=key, ignore_whitespace=ignore_whitespace,
        expandable=expandable,
    )  # fmt: skip
    if store:
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


def _build(
    *, prefix: str, diff: str, key: str, ignore_whitespace: bool, expandable: bool
) -> DiffView:
    try:
        raw_files = _parse(diff)
    except _Unparsable:
        files = [_unparsed_file(prefix, diff)]
    else:
        files = [
            _file(prefix, index, raw, ignore_whitespace=ignore_whitespace, expandable=expandable)
            for index, raw in enumerate(raw_files, start=1)
        ]
    return DiffView(
        files=files,
        added=sum(f.added for f in files),
        removed=sum(f.removed for f in files),
        files_changed=len(files),
        key=key,
        ignores_whitespace=ignore_whitespace,
        tree=_tree(files) if len(files) > TREE_MIN_FILES else None,
    )


def _tree(files: list[DiffFile]) -> TreeNode:
    """Files grouped by folder; a folder holding only one folder is merged into it ("a/b")."""
    root = TreeNode(name="")
    for file in files:
        node = root
        parts = (file.result_path or file.path).split("/")
        for part in parts[:-1]:
            child = next((d for d in node.dirs if d.name == part), None)
            if child is None:
                child = TreeNode(name=part)
                node.dirs.append(child)
            node = child
        node.files.append(file)

    def finish(node: TreeNode) -> None:
        for child in node.dirs:
            finish(child)
            while len(child.dirs) == 1 and not child.files:
                only = child.dirs[0]
                child.name, child.dirs, child.files = (
                    f"{child.name}/{only.name}",
                    only.dirs,
                    only.files,
                )
        node.dirs.sort(key=lambda d: d.name)
        node.added = sum(f.added for f in node.files) + sum(d.added for d in node.dirs)
        node.removed = sum(f.removed for f in node.files) + sum(d.removed for d in node.dirs)

    finish(root)
    return root


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
        header=lines[index], old_start=int(match.group(1)), new_start=int(match.group(3)),
        old_count=old_left, new_count=new_left,
    )  # fmt: skip
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


def _file(
    prefix: str, index: int, raw: _RawFile, *, ignore_whitespace: bool, expandable: bool
) -> DiffFile:
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
    raw_hunks = (
        [_without_whitespace_changes(h) for h in raw.hunks] if ignore_whitespace else raw.hunks
    )
    # One lexer pass per side of the file: the old (or new) lines of all its hunks, joined,
    # so a string or comment spanning lines is highlighted on every line it covers, and the
    # lexer is looked up and run twice per file rather than twice per hunk.
    old_side = [text for h in raw_hunks for tag, text in h.lines if tag in (" ", "-")]
    new_side = [text for h in raw_hunks for tag, text in h.lines if tag in (" ", "+")]
    old_html = iter(_highlight_side(lexer_path, old_side))
    new_html = iter(_highlight_side(lexer_path, new_side))
    hunks = [_hunk(raw_hunk, old_html, new_html) for raw_hunk in raw_hunks]
    offset = previous_last = 0
    for hunk, raw_hunk in zip(hunks, raw_hunks, strict=True):
        # A hunk adding lines only ("-5,0") sits after old line 5 and covers no old line.
        first = raw_hunk.old_start if raw_hunk.old_count else raw_hunk.old_start + 1
        hunk.gap_start, hunk.gap_end, hunk.gap_offset = previous_last + 1, first - 1, offset
        previous_last = first + raw_hunk.old_count - 1
        offset += raw_hunk.new_count - raw_hunk.old_count
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
        anchor=f"{prefix}-f{index}",
        is_large=added + removed > LARGE_FILE_LINES,
        number=index - 1,
        can_expand=expandable and status in ("modified", "renamed"),
        tail_start=previous_last + 1,
        tail_offset=offset,
    )


def _squeeze(text: str) -> str:
    return "".join(text.split())


def _without_whitespace_changes(raw: _RawHunk) -> _RawHunk:
    """The hunk as `git diff -w` pairs it: in each run of deletions followed by additions,
    lines equal once whitespace is ignored become one unchanged line showing the new text.
    Counts and numbering are unchanged (an unchanged line takes one old and one new line)."""
    out: list[tuple[str, str]] = []
    dels: list[str] = []
    adds: list[str] = []

    def flush() -> None:
        matcher = difflib.SequenceMatcher(
            None, [_squeeze(t) for t in dels], [_squeeze(t) for t in adds], autojunk=False
        )
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op == "equal":
                out.extend((" ", text) for text in adds[j1:j2])
            else:
                out.extend(("-", text) for text in dels[i1:i2])
                out.extend(("+", text) for text in adds[j1:j2])
        dels.clear()
        adds.clear()

    for position, (tag, text) in enumerate(raw.lines):
        if tag == "-" and not adds:
            dels.append(text)
        elif tag == "+":
            adds.append(text)
        elif tag == "\\":
            # A "no newline" marker belongs to the line before it: the pending run and the
            # rest of the hunk are kept as they are, so the marker stays on its line.
            out.extend([*(("-", t) for t in dels), *(("+", t) for t in adds), (tag, text)])
            out.extend(raw.lines[position + 1 :])
            break
        else:
            flush()
            if tag == "-":
                dels.append(text)
            else:
                out.append((tag, text))
    else:
        flush()
    return _RawHunk(
        header=raw.header, old_start=raw.old_start, new_start=raw.new_start,
        old_count=raw.old_count, new_count=raw.new_count, lines=out,
    )  # fmt: skip


def _highlight_side(path: str, lines: list[str]) -> list[str]:
    return highlighting.highlight_lines(path=path, text="\n".join(lines)) if lines else []


def _hunk(raw: _RawHunk, old_html, new_html) -> DiffHunk:
    """The hunk's lines, taking each side's highlighted lines in order from the file's
    iterators (one per side, over the lines of all the file's hunks)."""
    old_no, new_no = raw.old_start, raw.new_start
    lines: list[DiffLine] = []
    texts: dict[int, str] = {}  # id(line) -> its text, for the intra-line marks
    for tag, text in raw.lines:
        if tag == " ":
            next(old_html)  # the same line on the old side: shown once, as the new side has it
            lines.append(DiffLine("context", old_no, new_no, mark_safe(next(new_html))))  # noqa: S308
            old_no, new_no = old_no + 1, new_no + 1
        elif tag == "-":
            lines.append(DiffLine("del", old_no, None, mark_safe(next(old_html))))  # noqa: S308
            old_no += 1
        elif tag == "+":
            lines.append(DiffLine("add", None, new_no, mark_safe(next(new_html))))  # noqa: S308
            new_no += 1
        else:
            lines.append(DiffLine("no-newline", None, None, mark_safe(html.escape(text))))  # noqa: S308
        texts[id(lines[-1])] = text
    split_rows = _split_rows(lines)
    for row in split_rows:
        left, right = row.left, row.right
        if left is not None and right is not None and (left.kind, right.kind) == ("del", "add"):
            _mark_changed_words(left, right, texts[id(left)], texts[id(right)])
    return DiffHunk(header=raw.header, lines=lines, split_rows=split_rows)


_TOKEN_RE = re.compile(r"\w+|\s+|[^\w\s]")
# Escaped text (html.escape output) between tags: an entity, or one plain character.
_HTML_PIECE_RE = re.compile(r"<[^>]*>|&[#\w]+;|[^<&]+|&", re.DOTALL)
WORD_OPEN, WORD_CLOSE = '<span class="d-word">', "</span>"


def _mark_changed_words(old: DiffLine, new: DiffLine, old_text: str, new_text: str) -> None:
    """Wrap the words that differ between a deleted line and the added line paired with it."""
    if len(old_text) > WORD_MAX_CHARS or len(new_text) > WORD_MAX_CHARS or old_text == new_text:
        return
    old_tokens, new_tokens = _TOKEN_RE.findall(old_text), _TOKEN_RE.findall(new_text)
    matcher = difflib.SequenceMatcher(None, old_tokens, new_tokens, autojunk=False)
    if matcher.ratio() < WORD_MIN_RATIO:
        return
    old_ranges: list[tuple[int, int]] = []
    new_ranges: list[tuple[int, int]] = []
    old_at = _offsets(old_tokens)
    new_at = _offsets(new_tokens)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        if i2 > i1:
            old_ranges.append((old_at[i1], old_at[i2]))
        if j2 > j1:
            new_ranges.append((new_at[j1], new_at[j2]))
    old.html = mark_words(old.html, old_ranges)
    new.html = mark_words(new.html, new_ranges)


def _offsets(tokens: list[str]) -> list[int]:
    """Character offset of each token, plus the end."""
    offsets = [0]
    for token in tokens:
        offsets.append(offsets[-1] + len(token))
    return offsets


def mark_words(line_html: str, ranges: list[tuple[int, int]]) -> SafeString:
    """Wrap the characters in `ranges` (offsets into the unescaped text, sorted, disjoint) of
    escaped, highlighted HTML in <span class="d-word">.

    Tags and entities are copied whole and counted as what they show (a tag as nothing, an
    entity as one character). A mark never contains a tag: it is closed before each tag and
    reopened after it, so the marks nest inside the highlighting spans and stay balanced.
    """
    if not ranges:
        return mark_safe(line_html)  # noqa: S308 - already escaped
    # Where a mark opens or closes, as offsets into the text: even positions open, odd close.
    edges = [edge for pair in ranges for edge in pair]
    out: list[str] = []
    position = 0  # characters of text seen so far
    edge = 0  # the next edge not yet passed
    is_open = False
    for match in _HTML_PIECE_RE.finditer(line_html):
        piece = match.group()
        first = piece[0]
        if first == "<":
            if is_open:
                out.append(WORD_CLOSE)
                is_open = False
            out.append(piece)
            continue
        # A run of plain characters (or one entity, which shows as one character).
        size = 1 if first == "&" else len(piece)
        end = position + size
        cut = 0  # characters of the piece copied so far
        while True:
            while edge < len(edges) and edges[edge] <= position + cut and edges[edge] < end:
                edge += 1  # edges at or before this point are behind us
            inside = edge % 2 == 1  # past an opening edge, not yet its closing one
            if inside and not is_open:
                out.append(WORD_OPEN)
                is_open = True
            elif not inside and is_open:
                out.append(WORD_CLOSE)
                is_open = False
            stop = edges[edge] if edge < len(edges) and edges[edge] < end else end
            out.append(piece[cut:] if size == 1 and first == "&" else piece[cut : stop - position])
            cut = stop - position
            if stop >= end:
                break
        position = end
    if is_open:
        out.append(WORD_CLOSE)
    return mark_safe("".join(out))  # noqa: S308 - pieces of escaped HTML, plus our own tags


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


def _unparsed_file(prefix: str, diff: str) -> DiffFile:
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
        anchor=f"{prefix}-f1",
        is_large=len(lines) > LARGE_FILE_LINES,
    )


def attach_diff_views(candidates) -> None:
    """Give every finished candidate its parsed, highlighted diff (cached per diff)."""
    for candidate in candidates:
        if candidate.status == candidate.Status.SUCCEEDED:
            candidate.diff_view = candidate_diff_view(candidate)


def candidate_diff_view(candidate, *, ignore_whitespace: bool = False) -> DiffView:
    """The diff as people may see it: a model's endpoint name or id written into its code is
    masked (generic vendor words are left alone: they may be real identifiers)."""
    diff = mask_names(candidate.diff, names=identity_names(candidate))
    return build_diff_view(
        candidate_id=candidate.pk, diff=diff, ignore_whitespace=ignore_whitespace
    )


class ContextRangeError(ApplicationError):
    """Lines asked for around a hunk that are not unchanged lines of that file."""


def context_rows(
    *, candidate, file: DiffFile, start: int, end: int
) -> list[tuple[int, int, SafeString]]:
    """Unchanged old lines start..end (inclusive) of a changed file, read from the task's
    pinned commit and highlighted: (old line, new line, HTML) each, up to the file's end.

    The range must lie in one gap between hunks (or after the last), so each line's new
    number is its old one moved by the lines earlier hunks added or removed.
    """
    if not file.can_expand:
        raise ContextRangeError("This file has no earlier version to show more lines from.")
    if start < 1 or end < start:
        raise ContextRangeError("start and end must be line numbers with start <= end.")
    if end - start + 1 > CONTEXT_MAX_LINES:
        raise ContextRangeError(f"At most {CONTEXT_MAX_LINES} lines can be shown at once.")
    offset = None
    for hunk in file.hunks:
        if hunk.gap_start <= start and end <= hunk.gap_end:
            offset = hunk.gap_offset
    if start >= file.tail_start:
        offset = file.tail_offset
    if offset is None:
        raise ContextRangeError("Those lines are not unchanged lines between the hunks.")
    task = candidate.turn.task
    text = repo_services.repository_read_text(
        repository=task.repository, sha=task.commit_sha, path=file.old_path,
        max_bytes=settings.MARLIN_BROWSE_MAX_FILE_BYTES,
    )  # fmt: skip
    source = text.split("\n")
    if source and source[-1] == "":
        source.pop()
    if start > len(source):
        return []
    # The whole file is lexed, so a line inside a multi-line string is highlighted as one.
    lines = highlighting.highlight_lines(path=file.result_path, text="\n".join(source))
    last = min(end, len(source))
    return [
        (number, number + offset, mark_safe(lines[number - 1]))  # noqa: S308 - escaped
        for number in range(start, last + 1)
    ]
