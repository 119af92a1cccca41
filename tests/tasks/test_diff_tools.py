"""The diff tools: intra-line marks, hidden whitespace, context around hunks, the file tree
and the A vs B diff of a turn (tasks.diffview, tasks.ab_diff, tasks.diff_views)."""

from __future__ import annotations

import html
import itertools
import os
import re
import time
from html.parser import HTMLParser

import pytest
from django.core.cache import cache
from django.template.loader import render_to_string
from django.urls import reverse

from repos import services as repo_services
from tasks import services
from tasks.diffview import build_diff_view, mark_words
from tasks.models import Candidate
from tests.factories import pool_endpoints
from tests.tasks.helpers import create_task, generate_all, valid_scores

_ids = itertools.count(time.time_ns() % 10**9 * 1000 + 500)
VOID = {"br", "img", "hr", "input", "meta", "link"}


def view_of(diff: str, **kwargs):
    return build_diff_view(candidate_id=next(_ids), diff=diff, **kwargs)


def text_of(line_html: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", line_html))


def assert_balanced(fragment: str) -> None:
    """Every tag opened in the fragment is closed in order, and only span tags appear."""

    class Checker(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.stack: list[str] = []

        def handle_starttag(self, tag, attrs):
            assert tag == "span", tag
            self.stack.append(tag)

        def handle_endtag(self, tag):
            assert self.stack and self.stack.pop() == tag, tag

    checker = Checker()
    checker.feed(fragment)
    checker.close()
    assert checker.stack == []


def pair(old: str, new: str, path: str = "m.py"):
    view = view_of(f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-{old}\n+{new}\n")
    deleted, added = view.files[0].hunks[0].lines
    return deleted.html, added.html


# ---- Intra-line marks --------------------------------------------------------------------


def test_only_the_changed_word_of_a_line_pair_is_marked():
    old, new = pair("total = compute(a, b)", "total = compute(a, c)")
    assert re.findall(r'<span class="d-word">(.*?)</span>', old) == ["b"]
    assert re.findall(r'<span class="d-word">(.*?)</span>', new) == ["c"]
    # The marks add no text: the line reads exactly as before.
    assert text_of(old) == "total = compute(a, b)"
    assert text_of(new) == "total = compute(a, c)"


def test_both_tables_show_the_marks():
    view = view_of("--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-x = first\n+x = second\n")
    unified = render_to_string("tasks/_diff.html", {"view": view, "slot": "A"})
    view.layout = "split"  # the server sends one layout: each is rendered on its own
    split = render_to_string("tasks/_diff.html", {"view": view, "slot": "A"})
    assert '<table class="diff-split"' not in unified and '<table class="diff-unified"' not in split
    split = split.replace(unified.split("<details", 1)[0], "", 1)  # not the file list
    assert unified.count('class="d-word"') == 2
    assert split.count('class="d-word"') == 2


def test_lines_too_different_or_too_long_are_not_marked():
    old, new = pair("import os", "return fetch(url).json()['items']")
    assert "d-word" not in old + new
    long_old, long_new = pair("x = " + "a" * 500, "x = " + "a" * 499 + "b")
    assert "d-word" not in long_old + long_new


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('s = "<b>&amp;</b>"', 's = "<i>&amp;</i>"'),
        ("if a < b && c > d: pass", "if a <= b && c > d: pass"),
        (
            "x = '</td></tr></table><script>alert(1)</script>'",
            "x = '</td><script>alert(2)</script>'",
        ),
        ('<div class="a">&lt;</div>', '<div class="b">&lt;</div>'),
    ],
)
@pytest.mark.parametrize("path", ["m.py", "m.html", "m.txt"])
def test_marks_keep_hostile_lines_escaped_and_balanced(old, new, path):
    for before, line_html in zip((old, new), pair(old, new, path), strict=True):
        assert text_of(line_html) == before  # nothing lost, nothing unescaped twice
        assert "<script" not in line_html and "<b>" not in line_html and "<div" not in line_html
        assert_balanced(line_html)
    assert any("d-word" in h for h in pair(old, new, path))


def test_a_mark_never_splits_an_entity_or_crosses_a_tag():
    line = '<span class="s">&quot;a&amp;b&quot;</span>'
    assert (
        mark_words(line, [(1, 4)])
        == '<span class="s">&quot;<span class="d-word">a&amp;b</span>&quot;</span>'
    )
    # A changed range over two highlighted tokens is closed and reopened at the boundary.
    marked = mark_words('<span class="k">def</span> f', [(2, 5)])
    assert marked == (
        '<span class="k">de<span class="d-word">f</span></span><span class="d-word"> f</span>'
    )


# ---- Hiding whitespace -------------------------------------------------------------------

REINDENT = (
    "--- a/m.py\n+++ b/m.py\n@@ -10,4 +10,5 @@ def f():\n"
    " a = 1\n-if x:\n-  y = 2\n+if x:   \n+    y = 2\n+    z = 3\n b = 4\n"
)


def test_hiding_whitespace_turns_whitespace_only_changes_into_context():
    shown = view_of(REINDENT)
    hidden = view_of(REINDENT, ignore_whitespace=True)
    assert (shown.files[0].added, shown.files[0].removed) == (3, 2)
    assert (hidden.files[0].added, hidden.files[0].removed) == (1, 0)
    lines = [
        (ln.kind, ln.old_no, ln.new_no, text_of(ln.html)) for ln in hidden.files[0].hunks[0].lines
    ]
    assert lines == [
        ("context", 10, 10, "a = 1"),
        ("context", 11, 11, "if x:   "),  # the new text is shown
        ("context", 12, 12, "    y = 2"),
        ("add", None, 13, "    z = 3"),
        ("context", 13, 14, "b = 4"),
    ]
    assert hidden.key != shown.key  # cached apart


def test_hiding_whitespace_keeps_a_no_newline_marker_on_its_line():
    diff = "--- a/R\n+++ b/R\n@@ -1 +1 @@\n-x\n\\ No newline at end of file\n+x\n"
    kinds = [ln.kind for ln in view_of(diff, ignore_whitespace=True).files[0].hunks[0].lines]
    assert kinds == ["del", "no-newline", "add"]


# ---- File tree ---------------------------------------------------------------------------


def test_a_change_of_many_files_lists_them_as_a_tree_with_folder_sums():
    files = [f"src/app/mod{n}.py" for n in range(8)] + ["docs/guide.md"]
    diff = "".join(f"--- a/{p}\n+++ b/{p}\n@@ -1 +1,2 @@\n x\n+y\n" for p in files)
    view = view_of(diff)
    page = render_to_string("tasks/_diff.html", {"view": view, "slot": "A"})
    assert "diff-tree" in page
    names = [(d.name, d.added) for d in view.tree.dirs]
    assert names == [("docs", 1), ("src/app", 8)]  # a folder with one folder is merged
    assert re.search(r'src/app/</span> <span class="diff-added"[^>]*>\+8<', page)
    few = view_of("".join(f"--- a/{p}\n+++ b/{p}\n@@ -1 +1,2 @@\n x\n+y\n" for p in files[:3]))
    assert few.tree is None
    assert "diff-tree" not in render_to_string("tasks/_diff.html", {"view": few, "slot": "A"})


def test_each_file_names_its_path_and_candidate():
    diff = "--- a/old.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-a\n+b\n"
    view = view_of(diff)
    page = render_to_string("tasks/_diff.html", {"view": view, "slot": "A", "candidate_id": 7})
    assert 'data-path="old.py" data-candidate="7"' in page  # removed: the path before
    assert 'data-path="m.py" data-candidate="7"' in page


# ---- Context around hunks ----------------------------------------------------------------

# calc/ops.py at the pinned commit (tests/conftest.py DEMO_FILES) has 6 lines.
TWO_HUNKS = (
    "--- a/calc/ops.py\n+++ b/calc/ops.py\n"
    "@@ -1 +1,2 @@\n def add(a, b):\n+    # adds\n"
    "@@ -5,2 +6,2 @@\n def div(a, b):\n-    return a / b\n+    return a // b\n"
)


@pytest.fixture
def task(ready_repository, project, contractor):
    return generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )


def set_diffs(task, **diffs: str) -> dict[str, Candidate]:
    candidates = {c.slot: c for c in Candidate.objects.filter(turn__task=task)}
    for slot, diff in diffs.items():
        Candidate.objects.filter(pk=candidates[slot].pk).update(
            diff=diff, applies_cleanly=True, apply_error="", status=Candidate.Status.SUCCEEDED
        )
        candidates[slot].refresh_from_db()
    return candidates


def context(client, candidate, **params):
    url = reverse("tasks:candidate_context", args=[candidate.pk])
    return client.get(url, {"file": 0, "side": "old", **params})


def test_context_lines_come_from_the_pinned_commit_numbered_past_earlier_hunks(
    client, task, contractor
):
    candidate = set_diffs(task, A=TWO_HUNKS)["A"]
    client.force_login(contractor)
    response = context(client, candidate, start=2, end=4)
    assert response.status_code == 200
    body = response.content.decode()
    anchor = f"c{candidate.pk}-f1"
    # Old lines 2-4 sit after the first hunk, which added a line: new numbers are one more.
    for old_no, new_no in ((2, 3), (3, 4), (4, 5)):
        assert f'id="{anchor}-L{old_no}"' in body and f'id="{anchor}-R{new_no}"' in body
        assert f'id="{anchor}-sL{old_no}"' in body and f'id="{anchor}-sR{new_no}"' in body
    assert "return a + b" in text_of(body)
    # After the last hunk: the file ends at old line 6, so nothing more comes.
    tail = context(client, candidate, start=7, end=26)
    assert tail.status_code == 200 and "-L7" not in tail.content.decode()


def test_the_diff_marks_the_gaps_it_can_expand(client, task, contractor):
    candidate = set_diffs(task, A=TWO_HUNKS)["A"]
    client.force_login(contractor)
    url = reverse("tasks:candidate_diff", args=[candidate.pk])
    body = client.get(url).content.decode()
    split = client.get(url, {"layout": "split"}).content.decode()
    assert 'class="diff-split"' not in body and 'class="diff-unified"' not in split
    for page in (body, split):  # one table per layout, each with the slots
        assert page.count('data-hunk="1" data-gap-start="2" data-gap-end="4"') == 1
        assert 'data-hunk="0"' not in page  # nothing above line 1
        assert page.count('data-tail data-gap-start="7"') == 1
    assert f'data-context-url="{reverse("tasks:candidate_context", args=[candidate.pk])}"' in body


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "x", "end": "4"}, "whole numbers"),
        ({"start": "4", "end": "2"}, "start <= end"),
        ({"start": "1", "end": "3"}, "not unchanged lines"),  # line 1 is in a hunk
        ({"start": "7", "end": "600"}, "At most 500"),
        ({"start": "2", "end": "3", "file": "9"}, "no such file"),
        ({"start": "2", "end": "3", "side": "new"}, "side=old"),
    ],
)
def test_bad_context_requests_are_refused_with_a_reason(client, task, contractor, params, message):
    candidate = set_diffs(task, A=TWO_HUNKS)["A"]
    client.force_login(contractor)
    response = context(client, candidate, **params)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_an_added_file_has_no_context_to_show(client, task, contractor):
    diff = "--- /dev/null\n+++ b/new.py\n@@ -0,0 +1 @@\n+x = 1\n"
    candidate = set_diffs(task, A=diff)["A"]
    client.force_login(contractor)
    assert context(client, candidate, start=1, end=2).status_code == 400


def test_context_and_the_whitespace_view_are_for_those_who_may_see_the_task(
    client, task, contractor, other_contractor, reviewer
):
    candidate = set_diffs(task, A=TWO_HUNKS)["A"]
    diff_url = reverse("tasks:candidate_diff", args=[candidate.pk])
    for person in (other_contractor, reviewer):  # not submitted: not the reviewer's yet
        client.force_login(person)
        assert context(client, candidate, start=2, end=4).status_code == 404
        assert client.get(diff_url, {"whitespace": "hide"}).status_code == 404
    services.task_submit(
        task=task, by=contractor, preference=-2, scores=valid_scores(task.project),
        justification="A guards the zero divisor; B does not.",
    )  # fmt: skip
    assert context(client, candidate, start=2, end=4).status_code == 200


def test_the_whitespace_view_is_served_as_the_same_fragment(client, task, contractor):
    diff = (
        "--- a/calc/ops.py\n+++ b/calc/ops.py\n@@ -1,2 +1,2 @@\n"
        " def add(a, b):\n-    return a + b\n+    return  a + b\n"
    )
    candidate = set_diffs(task, A=diff)["A"]
    client.force_login(contractor)
    url = reverse("tasks:candidate_diff", args=[candidate.pk])
    shown = client.get(url).content.decode()
    hidden = client.get(url, {"whitespace": "hide"}).content.decode()
    assert 'class="d-del"' in shown and 'class="d-del"' not in hidden
    assert 'data-whitespace="hide"' in hidden and 'data-whitespace="hide"' not in shown
    assert f'id="c{candidate.pk}-f1-R2"' in hidden  # the same anchors


# ---- A vs B ------------------------------------------------------------------------------


README_CHANGE = (
    "--- a/README.md\n+++ b/README.md\n@@ -1,3 +1,3 @@\n-# calc\n+# Calc\n \n A tiny calculator.\n"
)


def ab(client, task, **params):
    turn = task.turns.get(number=1)
    return client.get(reverse("tasks:turn_ab_diff", args=[turn.pk]), params)


def clone_files(task) -> set[str]:
    root = repo_services.repository_cache_path(task.repository)
    return {os.path.join(d, f) for d, _, names in os.walk(root) for f in names}


def test_a_vs_b_shows_what_b_has_that_a_does_not(client, task, contractor):
    cache.clear()
    a_diff = (
        "--- a/calc/ops.py\n+++ b/calc/ops.py\n@@ -5,2 +5,4 @@\n def div(a, b):\n"
        "+    if b == 0:\n+        return None\n     return a / b\n"
    )
    b_diff = (
        "--- a/calc/ops.py\n+++ b/calc/ops.py\n@@ -5,2 +5,4 @@\n def div(a, b):\n"
        "+    if b == 0:\n+        raise ZeroDivisionError('b')\n     return a / b\n"
        "--- /dev/null\n+++ b/calc/extra.py\n@@ -0,0 +1 @@\n+X = 1\n"
    )
    set_diffs(task, A=a_diff, B=b_diff)
    before = clone_files(task)
    client.force_login(contractor)
    response = ab(client, task)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'aria-label="Changes in candidate A vs B"' in body
    assert "calc/extra.py" in body
    code = text_of(body)
    assert "return None" in code and "raise ZeroDivisionError" in code
    kinds = re.findall(r'<tr class="d-(add|del)">.*?<td class="d-code">(.*?)</td></tr>', body)
    changed = [(kind, text_of(code)) for kind, code in kinds]
    assert ("del", "        return None") in changed
    assert ("add", "        raise ZeroDivisionError('b')") in changed
    # Both added the same guard: it is no change between the two results.
    assert not any("if b == 0" in text for _, text in changed)
    assert clone_files(task) == before  # nothing written to the shared clone


def test_a_vs_b_masks_model_names(client, task, contractor):
    project = task.project
    name = pool_endpoints(project)[0].model_id
    b_diff = (
        "--- a/calc/ops.py\n+++ b/calc/ops.py\n@@ -1,2 +1,3 @@\n def add(a, b):\n"
        f"+    # written by {name}\n     return a + b\n"
    )
    set_diffs(task, A=README_CHANGE, B=b_diff)
    client.force_login(contractor)
    body = ab(client, task).content.decode()
    assert "ab-diff-problem" not in body  # compared as trees, not as texts
    assert name not in body
    assert "[model]" in text_of(body)


def test_a_vs_b_explains_when_a_change_does_not_apply(client, task, contractor):
    broken = "--- a/calc/ops.py\n+++ b/calc/ops.py\n@@ -1,2 +1,2 @@\n def nope():\n-    x\n+    y\n"
    good = README_CHANGE
    candidates = set_diffs(task, A=good, B=broken)  # B claims to apply, but git refuses
    client.force_login(contractor)
    body = ab(client, task).content.decode()
    assert "Candidate B&#x27;s change does not apply to the pinned commit" in body
    assert "Compare the two changes as text instead" in body
    assert "def nope" in text_of(body)
    # Known not to apply (as generation recorded): the same message without running git.
    Candidate.objects.filter(pk=candidates["A"].pk).update(
        diff=broken + "\n", applies_cleanly=False, apply_error="patch does not apply"
    )
    body = ab(client, task).content.decode()
    assert (
        "Candidate A&#x27;s change does not apply to the pinned commit: patch does not apply"
        in body
    )


def test_a_vs_b_is_for_those_who_may_see_the_task(
    client, task, contractor, other_contractor, reviewer
):
    set_diffs(task, A=TWO_HUNKS)
    for person in (other_contractor, reviewer):
        client.force_login(person)
        assert ab(client, task).status_code == 404


def test_the_a_vs_b_placeholder_loads_lazily(task):
    turn = task.turns.get(number=1)
    page = render_to_string("tasks/_ab_diff.html", {"turn": turn})
    url = reverse("tasks:turn_ab_diff", args=[turn.pk])
    assert f'hx-get="{url}"' in page and "intersect once" in page
