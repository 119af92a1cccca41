from __future__ import annotations

from django import template
from django.utils.safestring import mark_safe

from repos.highlighting import highlight_diff

register = template.Library()


@register.filter(name="diff_html")
def diff_html(diff: str) -> str:
    # Pygments escapes every character of the input, so its output is safe to mark safe.
    return mark_safe(highlight_diff(diff or ""))  # noqa: S308
