"""The files a contractor names as the ones that matter for a task (DESIGN.md, step 2).

Paths are repository-relative and checked here once, by the task service, whatever the
client (the page's form or the API): they end up in prompts, on pages and in exports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from marlin.exceptions import ApplicationError

MAX_FOCUS_FILES = 50
MAX_PATH_CHARS = 500
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class FocusFilesError(ApplicationError):
    """A named file is not a clean repository path (the message names it)."""


def _shown(path: str) -> str:
    # repr() makes control characters visible; long paths are cut so the message stays short.
    shown = repr(path)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _problem(path: str) -> str:
    if _CONTROL_RE.search(path):
        return "has a control character"
    if len(path) > MAX_PATH_CHARS:
        return f"is longer than {MAX_PATH_CHARS} characters"
    if path.startswith("/"):
        return 'must be relative to the repository root (no leading "/")'
    if "\\" in path:
        return 'uses "\\"; separate folders with "/"'
    if any(part in ("", ".", "..") for part in path.split("/")):
        return 'has an empty, "." or ".." part'
    return ""


def clean_focus_files(paths: Iterable[str] | None) -> list[str]:
    """The paths without blanks and duplicates (first mention kept, a folder's trailing "/"
    dropped), or FocusFilesError naming the first bad one."""
    clean: list[str] = []
    for raw in paths or ():
        if not isinstance(raw, str):
            raise FocusFilesError("Files that matter are given as text paths.")
        path = raw.strip()
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        if not path:
            continue
        if problem := _problem(path):
            raise FocusFilesError(f"The file that matters {_shown(path)} {problem}.")
        if path not in clean:
            clean.append(path)
    if len(clean) > MAX_FOCUS_FILES:
        raise FocusFilesError(
            f"Name at most {MAX_FOCUS_FILES} files that matter; {len(clean)} were given."
        )
    return clean
