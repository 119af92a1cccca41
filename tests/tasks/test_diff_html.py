"""tasks.diff_html: the diff as server-built strings, one layout, the first files only.

Each test checks one rule of issue 19's workspace: hostile model text escaped by
construction, one layout in the page, files past the first sent later, one lexer pass per
file side, plain line numbers, a byte budget and a constant number of queries.
"""

from __future__ import annotations

import itertools
import uuid
from html.parser import HTMLParser

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from repos import highlighting
from tasks import diff_html
from tasks.diff_html import LAYOUT_COOKIE, diff_page
from tests.tasks.helpers import create_task, generate_all
from tests.tasks.test_diff_tools import set_diffs

_ids = itertools.count(1_900_000_000 + uuid.uuid4().int % 10_000_000 * 10)


@pytest.fixture
def task(ready_repository, project, contractor):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    return generate_all(task)


def many_files(count: int, lines: int = 60, *, marker: str = "") -> str:
    """`count` added Python files of `lines` lines; the last file's lines carry `marker`."""
    out = []
    for number in range(count):
        tag = marker if number == count - 1 else ""
        out += ["--- /dev/null", f"+++ b/pkg/mod_{number}.py", f"@@ -0,0 +1,{lines} @@"]
        out += [f"+value_{i} = {i}  # {tag}" for i in range(lines)]
    return "\n".join(out) + "\n"


def page_of(view, **context) -> str:
    return render_to_string("tasks/_diff.html", {"view": view, "slot": "A", **context})


class _Tags(HTMLParser):
    """Counts opening and closing tags, and collects the text, as a browser would parse."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.opened: dict[str, int] = {}
        self.closed: dict[str, int] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.opened[tag] = self.opened.get(tag, 0) + 1

    def handle_endtag(self, tag):
        self.closed[tag] = self.closed.get(tag, 0) + 1

    def handle_data(self, data):
        self.text.append(data)


HOSTILE_LINES = [
    "</td></tr></table><script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "{{ request.user.password }} {% csrf_token %}",
    "a\x00b",
    "tab\tand 'quotes' & &amp; &lt;",
    "<b>" * 3000,  # a very long line
]


@pytest.mark.parametrize("layout", ["unified", "split"])
def test_hostile_model_text_is_escaped_in_every_part(layout):
    body = "".join(f"+{line}\n" for line in HOSTILE_LINES)
    diff = (
        '--- a/x</td><script>p()</script>".py\n+++ b/x</td><script>p()</script>".py\n'
        f"@@ -1,2 +1,{len(HOSTILE_LINES) + 1} @@ def f(): </th><script>h()</script>\n"
        " keep = 1\r\n-</td>gone<script>d()</script>\n" + body
    )
    view = diff_page(candidate_id=next(_ids), diff=diff, layout=layout)
    html = page_of(view)
    parser = _Tags()
    parser.feed(html)
    assert "script" not in parser.opened and "img" not in parser.opened
    for tag in ("td", "tr", "table", "tbody", "span", "th"):
        assert parser.opened.get(tag, 0) == parser.closed.get(tag, 0), tag
    text = "".join(parser.text)
    for line in [*HOSTILE_LINES, "</td>gone<script>d()</script>", "</th><script>h()</script>"]:
        assert line in text
    # Template syntax in model text stays text: the strings are never templates.
    assert "{{ request.user.password }} {% csrf_token %}" in text


def test_a_lone_surrogate_is_escaped_not_dropped():
    diff = "--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-a\n+<i>\ud800</i>\n"
    parser = _Tags()
    parser.feed(page_of(diff_page(candidate_id=next(_ids), diff=diff)))
    assert "i" not in parser.opened and "<i>\ud800</i>" in "".join(parser.text)


def test_one_layout_is_built_per_rendering():
    diff = "--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
    candidate_id = next(_ids)
    unified = page_of(diff_page(candidate_id=candidate_id, diff=diff))
    split = page_of(diff_page(candidate_id=candidate_id, diff=diff, layout="split"))
    assert 'class="diff-unified"' in unified and 'class="diff-split"' not in unified
    assert 'class="diff-split"' in split and 'class="diff-unified"' not in split


def test_the_workspace_sends_the_layout_of_the_cookie_only(client, task, contractor):
    set_diffs(task, A="--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n")
    client.force_login(contractor)
    url = reverse("tasks:detail", args=[task.pk])
    page = client.get(url).content.decode()
    assert 'class="diff-unified"' in page and 'class="diff-split"' not in page
    assert 'data-diff-view="unified"' in page
    client.cookies[LAYOUT_COOKIE] = "split"
    page = client.get(url).content.decode()
    assert 'class="diff-split"' in page and 'class="diff-unified"' not in page
    assert 'data-diff-view="split"' in page


def test_files_past_the_first_are_sent_when_asked_for(client, task, contractor):
    marker = uuid.uuid4().hex
    candidate = set_diffs(task, A=many_files(20, marker=marker))["A"]
    client.force_login(contractor)
    page = client.get(reverse("tasks:detail", args=[task.pk])).content.decode()
    assert marker not in page  # the last file is not in the first load...
    assert f'id="c{candidate.pk}-f20"' in page  # ...but it is listed, with its placeholder
    lazy = f"{reverse('tasks:candidate_diff', args=[candidate.pk])}?file=19&amp;layout=unified"
    assert f'hx-get="{lazy}"' in page
    assert page.count('class="diff-lazy"') == 20 - diff_html.EAGER_LINES // 60
    body = client.get(reverse("tasks:candidate_diff", args=[candidate.pk]), {"file": 19})
    assert marker in body.content.decode() and 'class="diff-unified"' in body.content.decode()
    split = client.get(
        reverse("tasks:candidate_diff", args=[candidate.pk]), {"file": 19, "layout": "split"}
    ).content.decode()
    assert marker in split and 'class="diff-split"' in split
    missing = client.get(reverse("tasks:candidate_diff", args=[candidate.pk]), {"file": 20})
    assert missing.status_code == 404


def test_each_side_of_a_file_is_lexed_once(monkeypatch):
    calls = []
    real = highlighting.highlight_lines

    def counting(**kwargs):
        calls.append(kwargs["path"])
        return real(**kwargs)

    monkeypatch.setattr(highlighting, "highlight_lines", counting)
    hunks = "".join(
        f"@@ -{10 * n + 1},2 +{10 * n + 1},2 @@\n ctx{n} = 0\n-old{n} = 1\n+new{n} = 2\n"
        for n in range(6)
    )
    diff_page(candidate_id=next(_ids), diff=f"--- a/m.py\n+++ b/m.py\n{hunks}")
    assert calls == ["m.py", "m.py"]  # old side and new side, not two per hunk


def test_line_numbers_are_never_localised(settings):
    settings.USE_THOUSAND_SEPARATOR = True
    diff = "--- a/m.py\n+++ b/m.py\n@@ -12344,2 +12344,2 @@\n a = 1\n-b = 2\n+b = 3\n"
    for layout in ("unified", "split"):
        html = page_of(diff_page(candidate_id=next(_ids), diff=diff, layout=layout))
        assert ">12345</a>" in html and "12,345" not in html and "12.345" not in html


def test_the_first_load_of_two_3000_line_candidates_stays_under_1_mb(client, task, contractor):
    diffs = {slot: many_files(40, 75, marker=f"{slot}{uuid.uuid4().hex}") for slot in ("A", "B")}
    set_diffs(task, **diffs)
    client.force_login(contractor)
    url = reverse("tasks:detail", args=[task.pk])
    for layout in ("unified", "split"):
        client.cookies[LAYOUT_COOKIE] = layout
        response = client.get(url)
        assert response.status_code == 200
        assert len(response.content) < 1_000_000, (layout, len(response.content))


def test_the_page_runs_as_many_queries_for_20_files_as_for_1(client, task, contractor):
    url = reverse("tasks:detail", args=[task.pk])
    client.force_login(contractor)
    counts = {}
    for files in (1, 20):
        set_diffs(task, A=many_files(files), B=many_files(files, 30))
        client.get(url)  # the same cache state for both: built once, then read
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        counts[files] = len(ctx.captured_queries)
    assert counts[1] == counts[20], counts
