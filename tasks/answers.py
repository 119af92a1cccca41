"""Turning a model's answer into an explanation and one unified diff against the pinned commit.

Models answer with a unified diff, with fenced ```diff blocks, or with whole files in fenced
blocks named by a path. Whole files are diffed against the commit here; every diff is parsed
with `unidiff` (so a mangled one is caught) and re-emitted with a/ b/ prefixes.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

_FENCE_OPEN_RE = re.compile(r"(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)")
_RELATIVE_PATH_RE = re.compile(r"[\w.-]+(?:/[\w.-]+)*")


@dataclass(frozen=True)
class _Fence:
    start: int
    end: int
    info: str
    body: str


def _fences(text: str) -> list[_Fence]:
    """Fenced blocks in one pass over the lines (a regex with a lazy body and a back
    reference goes quadratic on fences that never close)."""
    fences: list[_Fence] = []
    offset = 0
    opened: tuple[int, str, str, int] | None = None  # (start, fence, info, body start)
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        if opened is None:
            match = _FENCE_OPEN_RE.fullmatch(stripped)
            if match:
                opened = (offset, match.group("fence"), match.group("info"), offset + len(line))
        elif stripped.rstrip(" \t") == opened[1]:
            start, _, info, body_start = opened
            end = offset + len(stripped)
            fences.append(_Fence(start, end, info, text[body_start:offset]))
            opened = None
        offset += len(line)
    return fences


# A path right before a fence: "File: a/b.py", "### a/b.py", "`a/b.py`:" or "a/b.py:".
PATH_LINE_RE = re.compile(
    r"(?:^|\n)[ \t]*(?:[#*]+[ \t]*)?(?:file(?:name)?:[ \t]*)?`?(?P<path>[\w./-]+\.[\w]+|Makefile|Dockerfile)`?:?[ \t]*\*{0,2}[ \t]*\n?$",
    re.IGNORECASE,
)
_GIT_HEADER = (
    r"(?:old mode|new mode|deleted file mode|new file mode|similarity index|"
    r"dissimilarity index|rename from|rename to|copy from|copy to|index) .*\n"
)
RAW_DIFF_RE = re.compile(
    rf"^(?:diff --git .*\n(?:{_GIT_HEADER})*)?--- (?:a/)?\S.*\n\+\+\+ (?:b/)?\S.*\n@@ ",
    re.MULTILINE,
)
_HUNK_RE = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
DIFF_INFOS = {"diff", "patch", "udiff"}


class AnswerError(ValueError):
    """The answer holds no usable change; the message is shown to the contractor."""


@dataclass(frozen=True)
class ParsedAnswer:
    explanation: str
    diff: str


def _is_diff(text: str) -> bool:
    return bool(RAW_DIFF_RE.search(text))


def _check_hunk_lengths(diff_text: str) -> None:
    """unidiff ends a hunk where its header's counts say; lines past that would be dropped
    silently, so a hunk whose counts are too small is refused here."""
    lines = diff_text.splitlines()
    index = 0
    while index < len(lines):
        match = _HUNK_RE.match(lines[index])
        index += 1
        if not match:
            continue
        old = int(match.group(1) or 1)
        new = int(match.group(2) or 1)
        while (old > 0 or new > 0) and index < len(lines):
            line = lines[index]
            if line.startswith("\\"):
                index += 1
                continue
            if line.startswith("-"):
                old -= 1
            elif line.startswith("+"):
                new -= 1
            else:
                old -= 1
                new -= 1
            index += 1
        while index < len(lines) and lines[index].startswith("\\"):
            index += 1
        if index < len(lines):
            nxt, after = lines[index], lines[index + 1] if index + 1 < len(lines) else ""
            is_header = nxt.startswith("--- ") and after.startswith("+++ ")
            if nxt[:1] in (" ", "+", "-") and not is_header:
                raise AnswerError(
                    "The change in the answer is not a valid unified diff (a hunk is longer "
                    "than its header says)."
                )


def _normalise(diff_text: str) -> str:
    """Parse and re-emit a unified diff; raises AnswerError if it is not one."""
    _check_hunk_lengths(diff_text)
    try:
        patch = PatchSet(diff_text)
    except UnidiffParseError as exc:
        raise AnswerError(f"The change in the answer is not a valid unified diff ({exc}).") from exc
    if not len(patch):
        raise AnswerError("The answer contains no change.")
    out = []
    for patched in patch:
        source = patched.source_file if patched.is_added_file else f"a/{_strip(patched.path)}"
        target = patched.target_file if patched.is_removed_file else f"b/{_strip(patched.path)}"
        out.append(f"--- {source}\n+++ {target}\n")
        for hunk in patched:
            out.append(str(hunk))
    text = "".join(out)
    return text if text.endswith("\n") else text + "\n"


def _strip(path: str) -> str:
    return path[2:] if path.startswith(("a/", "b/")) else path


def _file_diff(path: str, new_text: str, read_original: Callable[[str], str | None]) -> str:
    original = read_original(path)
    old_lines = [] if original is None else original.splitlines(keepends=True)
    new_lines = new_text.splitlines(keepends=True)
    if new_lines and not new_lines[-1].endswith("\n"):
        new_lines[-1] += "\n"
    if old_lines and not old_lines[-1].endswith("\n"):
        old_lines[-1] += "\n"
    source = "/dev/null" if original is None else f"a/{path}"
    return "".join(difflib.unified_diff(old_lines, new_lines, fromfile=source, tofile=f"b/{path}"))


def parse(text: str, *, read_original: Callable[[str], str | None]) -> ParsedAnswer:
    """Split an answer into prose and one unified diff against the pinned commit.

    `read_original(path)` returns a file's text at the pinned commit, or None if absent.
    """
    diffs: list[str] = []
    prose_parts: list[str] = []
    cursor = 0
    for match in _fences(text):
        before = text[cursor : match.start]
        info = match.info.strip()
        body = match.body
        lang, _, rest = info.partition(" ")
        path_match = PATH_LINE_RE.search(before)
        # Only a relative path counts as a file name (not attributes like {.line-numbers}).
        candidates = [rest.strip(), lang if ("/" in lang or "." in lang) else ""]
        named = next(
            (c for c in candidates if c and _RELATIVE_PATH_RE.fullmatch(c) and ".." not in c),
            "",
        )
        if lang.lower() in DIFF_INFOS or _is_diff(body):
            diffs.append(body)
        elif named or path_match:
            path = named or path_match.group("path")
            if path_match and not named:
                before = before[: path_match.start()]
            diffs.append(_file_diff(path.strip("`"), body, read_original))
        else:
            prose_parts.append(before + text[match.start : match.end])
            cursor = match.end
            continue
        prose_parts.append(before)
        cursor = match.end
    prose_parts.append(text[cursor:])
    prose = "".join(prose_parts)
    if not diffs and _is_diff(prose):
        # A bare diff in the answer: everything from its first header on is the change.
        start = RAW_DIFF_RE.search(prose).start()
        diffs.append(prose[start:])
        prose = prose[:start]
    if not diffs:
        raise AnswerError("The answer contains no code change.")
    return ParsedAnswer(
        explanation=prose.strip(), diff="".join(_normalise(d) for d in diffs if d.strip())
    )
