"""Keeping models anonymous: what contractors and reviewers read never names a model.

Answers are stored as the model wrote them (the export keeps them whole); masking happens
when they are shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

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
