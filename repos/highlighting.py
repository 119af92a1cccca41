"""Pygments, wrapped: everything returned here is escaped HTML, safe to mark safe."""

from __future__ import annotations

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer

_DIFF_FORMATTER = HtmlFormatter(cssclass="highlight diff", wrapcode=True)


def highlight_diff(diff: str) -> str:
    return highlight(diff, DiffLexer(), _DIFF_FORMATTER)


def stylesheet() -> str:
    return HtmlFormatter(style="default").get_style_defs(".highlight")
