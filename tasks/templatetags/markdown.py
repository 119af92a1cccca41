from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from tasks.markdown import PAGE_HEADING_OFFSET, render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown(text) -> SafeString:
    """``{{ text|markdown }}``: untrusted Markdown as sanitised HTML (see ``tasks.markdown``).

    ``text`` is Markdown *source*, typically a plain ``str`` (a model's explanation is rendered
    by ``tasks.blinding.candidate_texts`` instead, masked); any HTML in it is shown as text.
    ``None`` renders as ``""``.
    """
    if text is None:
        return render_markdown("")
    return render_markdown(str(text))


@register.filter(name="markdown_in_page")
def markdown_in_page(text) -> SafeString:
    """``{{ text|markdown_in_page }}``: like ``markdown``, with headings demoted below the
    page's own (h1 in the text renders as h4), for explanations and prompts shown in a page."""
    return render_markdown("" if text is None else str(text), heading_offset=PAGE_HEADING_OFFSET)
