from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from tasks.markdown import render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown(text) -> SafeString:
    """``{{ text|markdown }}``: untrusted Markdown as sanitised HTML (see ``tasks.markdown``).

    ``text`` is Markdown *source*, typically a plain ``str`` (e.g. from ``|blinded:candidate``);
    any HTML in it is shown as text. ``None`` renders as ``""``.
    """
    if text is None:
        return render_markdown("")
    return render_markdown(str(text))
