"""Keeping models anonymous: what contractors and reviewers read never names a model.

Answers are stored as the model wrote them (the export keeps them whole); masking happens
when they are shown, once per candidate, in `candidate_texts`: the pages print its fields
and the API returns them, so the two cannot disagree on what a model's name looks like.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from html import unescape

from django.utils.html import linebreaks, strip_tags
from django.utils.safestring import SafeString, mark_safe

from tasks.markdown import PAGE_HEADING_OFFSET, render_markdown

MASK = "[model]"

_IDENTITY_RE = re.compile(
    r"\b(?:claude(?:[ -](?:\d[\w.]*|opus|sonnet|haiku|instant))*|anthropic|chat ?gpt|"
    r"gpt[ -]?\d[\w.-]*|gpt|openai|o[134](?:-mini|-pro|-preview)?|sonnet|opus|haiku|"
    r"gemini|gemma|bard|llama[ -]?\d*[\w.-]*|mistral|mixtral|codestral|qwen[\w.-]*|"
    r"deepseek[\w.-]*|kimi|moonshot|glm[\w.-]*|phi[ -]?\d[\w.-]*|codex|copilot|grok)\b",
    re.IGNORECASE,
)


_INVISIBLE_RE = re.compile("[\u00ad\u034f\u180e\u200b-\u200f\u2060-\u2064\ufeff]")


def identity_names(candidate) -> list[str]:
    """The names that identify a candidate's model: its own endpoint (which answered), its
    task's pair, and every endpoint in the project's pool (a model may name a rival; the
    pool is read from a prefetch when the selector made one)."""
    task = candidate.turn.task
    endpoints = {candidate.endpoint, task.first_endpoint, task.second_endpoint}
    endpoints |= {row.endpoint for row in task.project.pool.all()}
    return [n for e in endpoints for n in (e.name, e.model_id)]


def mask_names(text: str, *, names: Iterable[str]) -> str:
    """Replace only the given endpoint names and model ids: for code (diffs), where vendor
    words like `anthropic` may be real identifiers that must stay readable."""
    if not text:
        return text
    for name in sorted({n for n in names if n and len(n) >= 3}, key=len, reverse=True):
        text = re.sub(re.escape(name), MASK, text, flags=re.IGNORECASE)
    return text


def mask_identity(text: str, *, names: Iterable[str] = ()) -> str:
    """Replace model and vendor names (and the given endpoint names/model ids) with [model]."""
    if not text:
        return text
    # Invisible characters (soft hyphen, zero-width) would split a name past the patterns.
    text = _INVISIBLE_RE.sub("", text)
    return _IDENTITY_RE.sub(MASK, mask_names(text, names=names))


def mask_rendered_html(html: SafeString, *, names: Iterable[str]) -> SafeString:
    """Mask names again in rendered (already sanitised) HTML: Markdown decodes character
    references and escapes (&#99;laude, gpt&#45;4) only when it renders. "[model]" holds no
    markup character, so replacing text inside safe HTML keeps it safe.

    A name split by markup (**Open**AI) survives text masking: then the plain text is
    shown instead, masked, escaped, its lines kept (it was returned unmarked, so the page
    escaped it twice and showed its <p> tags as text)."""
    masked = mask_identity(str(html), names=names)
    text = unescape(strip_tags(masked))
    if mask_identity(text, names=names) != text:
        # autoescape=True: linebreaks escapes the text before adding its own <p> and <br>.
        plain = mask_identity(text, names=names).strip()
        return mark_safe(linebreaks(plain, autoescape=True))  # noqa: S308
    return mark_safe(masked)  # noqa: S308 - sanitised by render_markdown, masked with plain text


@dataclass(frozen=True)
class CandidateTexts:
    """Every text of a candidate's that people read, with model names masked: what the pages
    print and the API returns. The prose (explanation, errors) loses vendor words too; the
    diff only the endpoints' names and model ids (vendor words may be real identifiers)."""

    error: str
    apply_error: str
    failure_detail: str
    # The inputs of the lazy fields below; templates cannot read "_" attributes.
    _names: tuple[str, ...] = field(repr=False)
    _diff: str = field(repr=False)
    # The explanation's Markdown source with names masked as text.
    _explanation_source: str = field(repr=False)

    @cached_property
    def _explanation_rendered(self) -> SafeString:
        return render_markdown(self._explanation_source or "", heading_offset=PAGE_HEADING_OFFSET)

    @cached_property
    def explanation(self) -> str:
        """The explanation as the API returns it: its Markdown source, masked. A name that
        only rendering reveals (split by markup, **Open**AI, or a character reference,
        &#99;laude) would reach whoever renders the source: then the rendered text, masked,
        is returned instead (plain text, as the page's fallback)."""
        text = unescape(strip_tags(str(self._explanation_rendered)))
        masked = mask_identity(text, names=self._names)
        return self._explanation_source if masked == text else masked

    @cached_property
    def explanation_html(self) -> SafeString:
        """The explanation as the page shows it: masked Markdown, rendered and sanitised
        (tasks.markdown, headings below the page's), then masked again."""
        return mask_rendered_html(self._explanation_rendered, names=self._names)

    @cached_property
    def diff(self) -> str:
        return mask_names(self._diff, names=self._names)


def candidate_texts(candidate) -> CandidateTexts:
    """The candidate's texts as people see them (identity_names: its own endpoint, its
    task's pair and its project's pool). Computed once per candidate instance and kept on
    it, like the diff_view the pages attach; computed again if one of its texts changed."""
    sources = (
        candidate.explanation,
        candidate.error,
        candidate.apply_error,
        candidate.failure_detail,
        candidate.diff,
        candidate.endpoint_id,
    )
    kept = candidate.__dict__.get("_candidate_texts")
    if kept is not None and kept[0] == sources:
        return kept[1]
    names = tuple(identity_names(candidate))
    texts = CandidateTexts(
        error=mask_identity(candidate.error, names=names),
        apply_error=mask_identity(candidate.apply_error, names=names),
        failure_detail=mask_identity(candidate.failure_detail, names=names),
        _names=names,
        _diff=candidate.diff,
        _explanation_source=mask_identity(candidate.explanation, names=names),
    )
    candidate.__dict__["_candidate_texts"] = (sources, texts)
    return texts
