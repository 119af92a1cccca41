"""tasks.diffview.build_diff_view and templates/tasks/_diff.html: parsing, numbering, pairing,
highlighting, escaping and caching of a candidate's diff."""

from __future__ import annotations

import hashlib
import itertools
import re
import time
from collections.abc import Callable, Iterator

import pytest
from django.core.cache import cache
from django.core.cache.utils import make_template_fragment_key
from django.template.loader import render_to_string

from repos import highlighting
from tasks.diffview import CACHE_VERSION, LARGE_FILE_LINES, DiffView, build_diff_view

MULTI_FILE_DIFF = (
    "--- a/calc/ops.py\n"
    "+++ b/calc/ops.py\n"
    "@@ -1,4 +1,4 @@\n"
    " def add(a, b):\n"
    "-    return a + b\n"
    "+    return b + a\n"
    " \n"
    " \n"
    "@@ -10,3 +10,5 @@ def div(a, b):\n"
    " def div(a, b):\n"
    "+    if b == 0:\n"
    "+        return None\n"
    "     return a / b\n"
    " \n"
    "--- /dev/null\n"
    "+++ b/calc/new.py\n"
    "@@ -0,0 +1,2 @@\n"
    "+X = 1\n"
    "+Y = 2\n"
    "--- a/calc/old.py\n"
    "+++ /dev/null\n"
    "@@ -1,1 +0,0 @@\n"
    "-Z = 3\n"
    "--- a/README.md\n"
    "+++ b/README.md\n"
    "@@ -1,2 +1,2 @@\n"
    " # calc\n"
    "-A tiny calculator.\n"
    "\\ No newline at end of file\n"
    "+A tiny calculator.\n"
)

_ids = itertools.count(time.time_ns() % 10**9 * 1000)


@pytest.fixture
def build() -> Iterator[Callable[..., DiffView]]:
    """build_diff_view with a candidate id no other run used (the cache is the real one),
    and its cache entries removed afterwards."""
    keys: list[str] = []

    def _build(diff: str, candidate_id: int | None = None) -> DiffView:
        candidate_id = candidate_id if candidate_id is not None else next(_ids)
        digest = hashlib.sha256(diff.encode(errors="surrogatepass")).hexdigest()[:16]
        keys.append(f"diffview:v{CACHE_VERSION}:{candidate_id}:{digest}")
        view = build_diff_view(candidate_id=candidate_id, diff=diff)
        keys.extend(make_template_fragment_key("diffview_html_v1", [view.key, s]) for s in "AB")
        return view

    yield _build
    cache.delete_many(keys)


def render(view: DiffView, slot: str = "A") -> str:
    return render_to_string("tasks/_diff.html", {"view": view, "slot": slot})


def numbers(view: DiffView, file_index: int, hunk_index: int = 0) -> list[tuple]:
    hunk = view.files[file_index].hunks[hunk_index]
    return [(line.kind, line.old_no, line.new_no) for line in hunk.lines]


def test_it_counts_files_and_lines(build):
    view = build(MULTI_FILE_DIFF)
    assert (view.files_changed, view.added, view.removed) == (4, 6, 3)
    summary = [(f.path, f.status, f.added, f.removed) for f in view.files]
    assert summary == [
        ("calc/ops.py", "modified", 3, 1),
        ("calc/new.py", "added", 2, 0),
        ("calc/old.py", "removed", 0, 1),
        ("README.md", "modified", 1, 1),
    ]
    assert [f.anchor for f in view.files] == [
        f"{view.files[0].anchor[:-3]}-f{i}" for i in (1, 2, 3, 4)
    ]


def test_it_numbers_old_and_new_lines(build):
    view = build(MULTI_FILE_DIFF)
    assert numbers(view, 0, 0) == [
        ("context", 1, 1),
        ("del", 2, None),
        ("add", None, 2),
        ("context", 3, 3),
        ("context", 4, 4),
    ]
    # The second hunk starts where its header says, not where the first one ended.
    assert numbers(view, 0, 1) == [
        ("context", 10, 10),
        ("add", None, 11),
        ("add", None, 12),
        ("context", 11, 13),
        ("context", 12, 14),
    ]
    assert numbers(view, 1) == [("add", None, 1), ("add", None, 2)]
    assert numbers(view, 2) == [("del", 1, None)]
    # The marker takes no line number on either side.
    assert numbers(view, 3) == [
        ("context", 1, 1),
        ("del", 2, None),
        ("no-newline", None, None),
        ("add", None, 2),
    ]


def test_it_pairs_deletions_with_the_additions_that_follow(build):
    diff = (
        "--- a/m.py\n+++ b/m.py\n@@ -1,5 +1,5 @@\n"
        " a = 0\n-b = 1\n-c = 2\n-d = 3\n+b = 10\n+c = 20\n e = 4\n+f = 5\n"
    )
    view = build(diff)
    rows = view.files[0].hunks[0].split_rows

    def side(line, number):
        return None if line is None else (line.kind, getattr(line, number))

    assert [(side(r.left, "old_no"), side(r.right, "new_no")) for r in rows] == [
        (("context", 1), ("context", 1)),
        (("del", 2), ("add", 2)),
        (("del", 3), ("add", 3)),
        (("del", 4), None),  # more deletions than additions: the rest stand alone
        (("context", 5), ("context", 4)),
        (None, ("add", 5)),  # an addition with no deletion before it
    ]


def test_it_keeps_the_no_newline_marker_on_its_side(build):
    rows = build(MULTI_FILE_DIFF).files[3].hunks[0].split_rows
    kinds = [(r.left.kind if r.left else None, r.right.kind if r.right else None) for r in rows]
    # The marker belongs to the old text, so it pairs in the deletion run, not as context.
    assert kinds == [("context", "context"), ("del", "add"), ("no-newline", None)]


def test_it_names_renamed_files(build):
    diff = "--- a/old_name.py\n+++ b/new_name.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
    file = build(diff).files[0]
    assert (file.status, file.old_path, file.new_path) == ("renamed", "old_name.py", "new_name.py")
    assert "old_name.py" in file.path and "new_name.py" in file.path


def test_it_renders_an_empty_diff_as_no_changes(build):
    view = build("")
    assert view.files == []
    assert "No changes." in render(view)


HOSTILE_DIFF = (
    "--- a/<b>x</b>.py\n"
    "+++ b/<b>x</b>.py\n"
    '@@ -1,2 +1,2 @@ <script>alert("header")</script>\n'
    ' s = "<script>alert(1)</script>"\n'
    '-t = 1  # "><img src=x onerror=alert(2)>\n'
    "+t = '\"><img src=x onerror=alert(3)>'\n"
    "--- /dev/null\n"
    "+++ b/notes/<img src=x onerror=alert(4)>.txt\n"
    "@@ -0,0 +1 @@\n"
    "+</td></tr></table><script>alert(5)</script>\n"
)


def test_it_escapes_every_part_of_the_diff(build):
    html = render(build(HOSTILE_DIFF))
    # No tag from the diff survives, in code, hunk headers, paths, links or labels.
    assert "<script" not in html
    assert "<img" not in html
    assert "<b>" not in html
    assert "</td></tr></table><" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;x&lt;/b&gt;.py" in html
    assert "onerror=alert(3)" in re.sub(r"<[^>]+>", "", html)  # shown, as text (word marks aside)
    assert "alert(5)" in html


def test_it_escapes_hostile_file_names_in_attributes(build):
    html = render(build('--- a/x" onmouseover="alert(1).py\n+++ b/x" onmouseover="alert(1).py\n'
                        "@@ -1 +1 @@\n-a\n+b\n"))  # fmt: skip
    assert 'onmouseover="alert' not in html
    assert "x&quot; onmouseover=&quot;alert(1).py" in html


@pytest.mark.parametrize(
    "diff",
    [
        "this is not a diff <script>alert(1)</script>\nat all\n",
        # a hunk shorter than its header says (a truncated answer)
        "--- a/m.py\n+++ b/m.py\n@@ -1,3 +1,3 @@\n a\n-<script>b</script>\n",
        # a hunk longer than its header says
        "--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-a\n+b\n+<script>c</script>\n",
        # a header with no hunk, and a broken hunk header
        "--- a/m.py\n+++ b/m.py\n--- a/n.py\n+++ b/n.py\n@@ -x +y @@\n<script>d</script>\n",
        # no +++ line
        "--- a/m.py\n@@ -1 +1 @@\n-a\n+<script>e</script>\n",
        "\x00\x0b\x1c\u2028<script>f</script>\r\n\ud800",
    ],
)
def test_it_shows_a_malformed_diff_escaped(build, diff):
    view = build(diff)
    assert [(f.status, f.added, f.removed) for f in view.files] == [("unparsed", 0, 0)]
    html = render(view)
    assert "<script" not in html
    assert "&lt;script&gt;" in html


def test_it_reads_the_second_build_from_the_cache(build, monkeypatch):
    calls = []
    original = highlighting.highlight_lines

    def counting(**kwargs):
        calls.append(kwargs["path"])
        return original(**kwargs)

    monkeypatch.setattr(highlighting, "highlight_lines", counting)
    candidate_id = next(_ids)
    first = build(MULTI_FILE_DIFF, candidate_id)
    highlighted = len(calls)
    assert highlighted > 0
    second = build(MULTI_FILE_DIFF, candidate_id)
    assert len(calls) == highlighted  # nothing was highlighted again
    assert second == first
    # Still safe after the round trip through the cache, so it is not escaped twice.
    assert "&amp;" not in render(second)
    assert "<span" in render(second)
    # Another diff for the same candidate (a retry) is built afresh.
    build(MULTI_FILE_DIFF.replace("b + a", "a + b + 0"), candidate_id)
    assert len(calls) > highlighted


def test_it_highlights_a_multiline_string_on_every_line(build):
    diff = (
        "--- a/doc.py\n+++ b/doc.py\n@@ -1,1 +1,5 @@\n"
        " x = 1\n"
        '+HELP = """first line\n'
        "+def not_code(): return 1\n"
        "+# not a comment\n"
        '+last line"""\n'
    )
    lines = build(diff).files[0].hunks[0].lines
    assert lines[1].html.endswith('<span class="s2">first line</span>')
    for line in lines[2:]:
        # Lexed as a whole, the middle lines are string, not a def or a comment.
        classes = set(re.findall(r'class="([^"]+)"', line.html))
        assert classes == {"s2"}, line.html
    assert 'class="k"' not in "".join(line.html for line in lines[2:])


def test_every_line_html_is_balanced(build):
    view = build(MULTI_FILE_DIFF)
    for file in view.files:
        for hunk in file.hunks:
            for line in hunk.lines:
                assert line.html.count("<span") == line.html.count("</span>")


def test_line_anchors_are_unique_and_linked(build):
    view = build(MULTI_FILE_DIFF)
    html = render(view)
    ids = re.findall(r'id="([^"]+)"', html)
    # Both tables are in the page (CSS hides one), so their ids differ too.
    assert len(ids) == len(set(ids))
    first = view.files[0].anchor
    assert f'id="{first}-R2" href="#{first}-R2"' in html
    assert f'id="{first}-L2" href="#{first}-L2"' in html
    assert f'<a href="#{first}">calc/ops.py</a>' in html


def test_it_renders_both_tables_with_headers_and_stats(build):
    view = build(MULTI_FILE_DIFF)
    html = render(view, slot="B")
    assert "4 files changed" in html and "+6" in html and "−3" in html
    # One layout per rendering (the server sends the one asked for, not both).
    assert html.count('<table class="diff-unified"') == 4
    assert html.count('<table class="diff-split"') == 0
    view.layout = "split"
    split = render(view, slot="B")
    assert split.count('<table class="diff-split"') == 4
    assert split.count('<table class="diff-unified"') == 0
    assert '<th scope="col">Old code</th>' in split
    assert 'aria-label="Files changed in candidate B"' in html
    assert "<script" not in html  # no inline JS


def test_it_collapses_large_files_but_keeps_their_lines(build):
    count = LARGE_FILE_LINES + 1
    diff = f"--- /dev/null\n+++ b/big.py\n@@ -0,0 +1,{count} @@\n" + "".join(
        f"+v{i} = {i}\n" for i in range(count)
    )
    view = build(diff)
    assert view.files[0].is_large
    html = render(view)
    tag = re.search(rf'<details class="diff-file" id="{view.files[0].anchor}"[^>]*>', html).group()
    assert " open" not in tag  # not open
    assert f"-R{count}" in html
