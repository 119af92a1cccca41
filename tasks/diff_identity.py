"""Whether two candidates made the same change, whitespace aside.

Two models often make the very same edit. Exported as a preference, such a pair teaches a
model nothing (or noise), so the workspace must notice it. A change is reduced to what it
does to each file: for every removed line, its line number in the pinned commit; for every
added line, the pinned commit's line it follows; each with its text stripped of all
whitespace. Lines that differ only in whitespace (a re-indent) cancel out, blank lines do not
count, and hunk headers, context lines and file order play no part.
"""

from __future__ import annotations

import re
from collections import Counter

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

_WHITESPACE = re.compile(r"\s+")

# (path, "-" or "+", anchor line in the pinned commit, text without whitespace) -> count
Change = Counter


def normalised_change(diff: str) -> Change:
    """The change a unified diff makes, in a form where whitespace does not matter."""
    change: Change = Counter()
    try:
        patch = PatchSet(diff.splitlines(keepends=True))
    except UnidiffParseError:
        patch = None
    if not patch and diff.strip():
        # Not a diff we can read: compare its text, whitespace removed, as a whole.
        change[("", "=", 0, _WHITESPACE.sub("", diff))] += 1
        return change
    for file in patch:
        path = file.path
        for hunk in file:
            removed: Counter = Counter()
            added: Counter = Counter()
            anchor = hunk.source_start - 1
            for line in hunk:
                if line.source_line_no is not None:
                    anchor = line.source_line_no
                text = _WHITESPACE.sub("", line.value)
                if not text:
                    continue
                if line.is_removed:
                    removed[(anchor, text)] += 1
                elif line.is_added:
                    added[(anchor, text)] += 1
            # A line removed and added back with other whitespace is no change. Compared by
            # text alone: a re-indented line is added after the removed one's number.
            removed_texts = Counter(text for (_, text), n in removed.items() for _ in range(n))
            added_texts = Counter(text for (_, text), n in added.items() for _ in range(n))
            unchanged = removed_texts & added_texts
            for sign, lines in (("-", removed), ("+", added)):
                left = Counter(unchanged)
                for (position, text), count in sorted(lines.items()):
                    cancel = min(count, left[text])
                    left[text] -= cancel
                    if count - cancel:
                        change[(path, sign, position, text)] += count - cancel
    return change


def same_change(diff_a: str, diff_b: str) -> bool:
    """True when the two diffs make the same change once whitespace is ignored."""
    if diff_a == diff_b:
        return True
    return normalised_change(diff_a) == normalised_change(diff_b)
