"""Blinding is computed once, in Python (tasks.blinding.candidate_texts): the pages print its
fields and the API returns them, so a model's name is masked the same way in both, and no
template masks (or forgets to mask) anything itself."""

from __future__ import annotations

import html as html_lib
import re
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse
from django.utils.html import conditional_escape, escape

from tasks import blinding
from tasks.blinding import candidate_texts
from tasks.markdown import render_markdown
from tasks.models import Candidate
from tests.api_clients import api_client_for
from tests.factories import ModelEndpointFactory, ProjectFactory, pool_endpoints
from tests.reviews.test_quality_judging import accepted
from tests.tasks.helpers import create_task, generate_all

pytestmark = pytest.mark.django_db

SECRET_WORDS = ["zebra-endpoint", "zebra-model-v9", "yak-endpoint", "yak-model-2", "claude",
                "openai", "anthropic", "gpt"]  # fmt: skip

# Each way of writing a name: plainly, split by Markdown markup (only the rendered text joins
# it), as a character reference (only Markdown decodes it), and the endpoint's own model id.
EXPLANATIONS = [
    "Made by **Open**AI, with `pytest`.\n\n# Done",
    "Made by &#99;laude: see [the docs](https://example.com).",
    "I, zebra-model-v9 (not yak-endpoint), wrote *this* fix.",
]


DIFF = (
    "diff --git a/NOTES.md b/NOTES.md\nnew file mode 100644\n--- /dev/null\n+++ b/NOTES.md\n"
    "@@ -0,0 +1 @@\n+written by zebra-model-v9 for anthropic_client\n"
)


def _visible_text(fragment: str) -> str:
    return html_lib.unescape(re.sub(r"<[^>]+>", "", fragment))


def _assert_blind(text: str) -> None:
    lowered = text.lower()
    leaks = [word for word in SECRET_WORDS if re.search(rf"\b{re.escape(word)}", lowered)]
    assert not leaks, f"model identity leaked: {leaks}"


@pytest.fixture
def named_task(ready_repository, contractor):
    project = ProjectFactory(
        endpoint_a=ModelEndpointFactory(name="zebra-endpoint", model_id="zebra-model-v9"),
        endpoint_b=ModelEndpointFactory(name="yak-endpoint", model_id="yak-model-2"),
    )
    return generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )


def _name_the_models(task, explanation: str) -> tuple[Candidate, Candidate]:
    """A succeeded but does not apply; B failed. Every text names a model."""
    a, b = Candidate.objects.filter(turn__task=task).order_by("slot")
    Candidate.objects.filter(pk=a.pk).update(
        explanation=explanation,
        applies_cleanly=False,
        apply_error="patch from Claude (zebra-endpoint) does not apply",
        diff=DIFF,
    )
    Candidate.objects.filter(pk=b.pk).update(
        status=Candidate.Status.FAILED,
        error="yak-model-2 by OpenAI timed out",
        failure_detail="HTTP 500 from api.openai.com for yak-endpoint (GPT-4o)",
    )
    return Candidate.objects.get(pk=a.pk), Candidate.objects.get(pk=b.pk)


def _article(page: str, slot: str) -> str:
    start = page.index(f'<article class="candidate card" data-slot="{slot}"')
    return page[start : page.index("</article>", start)]


@pytest.mark.parametrize("explanation", EXPLANATIONS)
def test_the_workspace_and_the_api_show_the_same_masked_texts(
    client, named_task, contractor, explanation
):
    a, b = _name_the_models(named_task, explanation)
    client.force_login(contractor)
    page = client.get(reverse("tasks:detail", args=[named_task.pk])).content.decode()
    data = api_client_for(contractor).get(reverse("api-task", args=[named_task.pk])).json()
    from_api = {c["slot"]: c for turn in data["turns"] for c in turn["candidates"]}
    texts_a, texts_b = candidate_texts(a), candidate_texts(b)

    assert from_api["A"]["explanation"] == texts_a.explanation
    assert from_api["A"]["apply_error"] == texts_a.apply_error
    assert from_api["A"]["diff"] == texts_a.diff and "[model]" in texts_a.diff
    assert from_api["B"]["error"] == texts_b.error
    shown_a, shown_b = _article(page, "A"), _article(page, "B")
    assert f'<div class="explanation">{conditional_escape(texts_a.explanation_html)}</div>' in (
        shown_a
    )
    assert f'title="{escape(texts_a.apply_error)}"' in shown_a
    assert f'<p class="error">{escape(texts_b.error)}</p>' in shown_b

    # What people read: the rendered explanation (where **Open**AI and &#99;laude become
    # names) and the errors. The API's explanation is Markdown source: rendered by whoever
    # reads it, it names no model either.
    from_api_rendered = _visible_text(str(render_markdown(from_api["A"]["explanation"])))
    for text in (
        _visible_text(texts_a.explanation_html),
        from_api_rendered,
        texts_a.apply_error,
        texts_b.error,
    ):
        assert "[model]" in text
        _assert_blind(text)
    _assert_blind(_visible_text(shown_a[: shown_a.index('<div class="diff">')]))
    _assert_blind(_visible_text(shown_b))
    # Code keeps vendor words (they may be real identifiers), not the endpoints' names.
    assert "+written by [model] for anthropic_client" in texts_a.diff
    for name in SECRET_WORDS[:4]:
        assert name not in str(data) and name not in page


def test_the_failure_detail_admins_read_is_the_masked_one(named_task, admin_user):
    _, b = _name_the_models(named_task, EXPLANATIONS[0])
    request = RequestFactory().get("/")
    request.user = admin_user
    shown = render_to_string("tasks/_failure_detail.html", {"candidate": b}, request)
    texts = candidate_texts(b)
    assert f"<pre>{escape(texts.failure_detail)}</pre>" in shown
    assert "HTTP 500" in texts.failure_detail
    _assert_blind(texts.failure_detail)
    _assert_blind(_visible_text(shown))


@pytest.mark.parametrize("explanation", EXPLANATIONS)
def test_the_judging_page_and_api_show_the_same_masked_explanation(
    client, project, ready_repository, contractor, reviewer, other_contractor, explanation
):
    project.overlap_percent = 100
    project.save()
    task = accepted(project, ready_repository, contractor, reviewer)
    first, second = pool_endpoints(project)[:2]
    written = explanation.replace("zebra-model-v9", first.model_id).replace(
        "yak-endpoint", second.name
    )
    Candidate.objects.filter(turn__task=task).update(explanation=written)

    taken = api_client_for(other_contractor).post(reverse("api-judging-task-next")).json()
    client.force_login(other_contractor)
    page = client.get(reverse("reviews:judging_detail", args=[taken["id"]])).content.decode()
    texts = candidate_texts(Candidate.objects.filter(turn__task=task).first())

    assert [c["explanation"] for c in taken["candidates"]] == [texts.explanation] * 2
    shown = f'<div class="explanation">{conditional_escape(texts.explanation_html)}</div>'
    assert page.count(shown) == 2
    for leaked in (first.name, first.model_id, second.name, second.model_id):
        assert leaked not in page and leaked not in str(taken)
    _assert_blind(texts.explanation)
    _assert_blind(_visible_text(page[page.index('<section class="candidates">') :]))


def test_the_texts_are_computed_once_per_candidate(named_task):
    a, _ = _name_the_models(named_task, EXPLANATIONS[0])
    with mock.patch.object(blinding, "identity_names", wraps=blinding.identity_names) as names:
        texts = candidate_texts(a)
        assert candidate_texts(a) is texts
        assert names.call_count == 1
        a.explanation = "Now by Gemini."
        assert candidate_texts(a).explanation == "Now by [model]."
        assert names.call_count == 2


TEMPLATES = Path(settings.BASE_DIR) / "templates"
# A candidate's texts printed straight from the model, unmasked ({% if %} may test them).
_RAW_PRINT = re.compile(
    r"\{\{[^}]*\bcandidate\.(?:explanation|error|apply_error|failure_detail|diff)\b[^}]*\}\}"
)
_FILTER = re.compile(r"\|\s*(?:blinded|blinded_html)\b")


def test_no_template_masks_or_prints_a_candidates_raw_text():
    offenders = [
        f"{path.relative_to(TEMPLATES)}: {match.group(0)}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        for pattern in (_RAW_PRINT, _FILTER)
        for match in pattern.finditer(path.read_text())
    ]
    assert not offenders, "print texts.<field> from {% candidate_texts %} instead: " + "; ".join(
        offenders
    )


def test_the_blinding_library_has_no_filters_left():
    from tasks.templatetags.blinding import register

    assert register.filters == {}
    assert set(register.tags) == {"candidate_texts"}


def test_a_name_split_by_markup_falls_back_to_paragraphs_escaped_once(
    client, named_task, contractor
):
    """**Open**AI is masked by showing the rendered text as plain text. It shows as a
    paragraph of lines (the fallback once went out unmarked and the page escaped it again,
    its <p> tags visible as text), and what the text holds stays escaped: a tag in code is
    shown, not run."""
    _name_the_models(
        named_task, "Made by **Open**AI.\n\nIt checks `<script>alert(1)</script>` & more."
    )
    client.force_login(contractor)
    page = client.get(reverse("tasks:detail", args=[named_task.pk])).content.decode()
    shown = _article(page, "A")
    explanation = shown[shown.index('<div class="explanation">') :]
    explanation = explanation[: explanation.index("</div>") + 6]
    assert explanation == (
        '<div class="explanation"><p>Made by [model].<br>'
        "It checks &lt;script&gt;alert(1)&lt;/script&gt; &amp; more.</p></div>"
    )
    assert "&lt;p&gt;" not in page
