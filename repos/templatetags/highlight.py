from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from repos.highlighting import highlight_diff

register = template.Library()


@register.filter(name="diff_html")
def diff_html(diff: str) -> SafeString:
    return highlight_diff(diff or "")
