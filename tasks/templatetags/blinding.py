from __future__ import annotations

from html import unescape

from django import template
from django.utils.html import linebreaks, strip_tags
from django.utils.safestring import SafeString, mark_safe

from tasks.blinding import identity_names, mask_identity

register = template.Library()


def _names(candidate) -> list[str]:
    return identity_names(candidate)


@register.filter(name="blinded_html")
def blinded_html(html: str, candidate) -> SafeString:
    """Mask names again in rendered (already sanitised) HTML: Markdown decodes character
    references and escapes (&#99;laude, gpt&#45;4) only when it renders. "[model]" holds no
    markup character, so replacing text inside safe HTML keeps it safe."""
    names = _names(candidate)
    masked = mask_identity(str(html), names=names)
    text = unescape(strip_tags(masked))
    if mask_identity(text, names=names) != text:
        # A name split by markup (**Open**AI) survives text masking: show plain text instead.
        return linebreaks(mask_identity(text, names=names), autoescape=True)
    return mark_safe(masked)  # noqa: S308


@register.filter(name="blinded")
def blinded(text: str, candidate) -> str:
    """The text with model names masked: the candidate's own endpoint (which answered, even if
    the project changed since) and both of its project's (a model may name its rival).
    The result is still autoescaped by the page."""
    return mask_identity(text, names=_names(candidate))
