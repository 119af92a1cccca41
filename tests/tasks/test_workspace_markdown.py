"""Prompts are Markdown like explanations (sanitised), and neither outranks the page's own
headings: text written by a contractor or a model renders its headings from h4 down."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from reviews.claim_services import review_claim
from tasks.markdown import render_markdown
from tasks.models import Candidate
from tests.tasks.helpers import create_task, generate_all, submit

PROMPT = "# Fix the parser\n\nIt must **reject** `1/0`.\n\n<script>window.x=1</script>"
EXPLANATION = "# Summary\n\n## Details\n\nI changed *one* line."


def _page_headings(html: str) -> list[int]:
    return [int(level) for level in re.findall(r"<h([1-6])[ >]", html)]


@pytest.fixture
def task(ready_repository, project, contractor):
    task = generate_all(
        create_task(
            contractor=contractor, project=project, repository=ready_repository, prompt=PROMPT
        )
    )
    Candidate.objects.filter(turn__task=task).update(explanation=EXPLANATION)
    return task


def test_headings_are_demoted_by_the_offset_and_capped_at_h6():
    html = render_markdown("# a\n## b\n### c\n###### d", heading_offset=3)
    assert _page_headings(html) == [4, 5, 6, 6]
    assert _page_headings(render_markdown("# a")) == [1]


def test_the_prompt_is_markdown_and_no_written_heading_outranks_the_page(client, contractor, task):
    client.force_login(contractor)
    html = client.get(reverse("tasks:detail", args=[task.pk])).content.decode()
    prompt = html[html.index('id="current-turn"') :]
    prompt = prompt[: prompt.index("</section>")]
    assert "<h4>Fix the parser</h4>" in prompt
    assert "<strong>reject</strong>" in prompt and "<code>1/0</code>" in prompt
    assert "# Fix the parser" not in prompt
    assert "&lt;script&gt;" in prompt and "<script>window" not in html
    for block in re.findall(r'<div class="explanation">(.*?)</div>', html, re.S):
        assert _page_headings(block) == [4, 5], block
    # The page's own: one h1, sections h2, candidates h3; nothing written reaches them.
    assert _page_headings(html).count(1) == 1


def test_the_reviewer_sees_the_prompt_as_markdown_too(client, task, reviewer):
    submit(task)
    review_claim(task=task, reviewer=reviewer)
    client.force_login(reviewer)
    html = client.get(reverse("reviews:detail", args=[task.pk])).content.decode()
    assert "<h4>Fix the parser</h4>" in html
    assert "&lt;script&gt;" in html and "<script>window" not in html
    for block in re.findall(r'<div class="explanation">(.*?)</div>', html, re.S):
        assert _page_headings(block) == [4, 5], block


def test_the_pinned_commit_shows_its_message_and_date_on_both_pages(client, task, reviewer):
    # A new user saw a bare SHA; the pages now say which commit that is.
    pages = []
    client.force_login(task.contractor)
    pages.append(client.get(reverse("tasks:detail", args=[task.pk])).content.decode())
    submit(task)
    review_claim(task=task, reviewer=reviewer)
    client.force_login(reviewer)
    pages.append(client.get(reverse("reviews:detail", args=[task.pk])).content.decode())
    for html in pages:
        meta = html[html.index('<p class="meta">') :]
        meta = meta[: meta.index("</p>")]
        assert f'title="{task.commit_sha}">{task.commit_sha[:12]}</code>' in meta
        subject = re.search(r'<span class="commit-subject"[^>]*>([^<]+)</span>', meta)
        assert subject and subject.group(1).strip(), meta
        assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT[^"]+">\d{4}-\d\d-\d\d</time>', meta)
