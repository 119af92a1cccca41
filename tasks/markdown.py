"""Render untrusted Markdown (model explanations) to safe HTML.

Why the output is safe to mark as such:

1. The Markdown is parsed by markdown-it-py with raw HTML *disabled*: any HTML a model writes
   (``<script>``, ``<img onerror=...>``, ``<iframe>``, comments...) is emitted as escaped text,
   never as markup. markdown-it also refuses ``javascript:``/``vbscript:``/``file:`` link
   destinations and ``data:`` ones other than a few image types, leaving such links as text.
2. Images are never emitted: a Markdown image is rendered as a plain link to its source, with
   the alt text as the link text, so no remote resource is fetched when a page is shown.
3. The HTML is then passed through nh3 (the ammonia sanitiser) with a strict allowlist:
   only the structural tags below, only ``href``/``title`` on ``a``, a numeric ``start`` on
   ``ol`` and a ``language-...`` class on ``code``; links only with http, https or mailto
   schemes (or relative); every link gets ``rel="noopener noreferrer nofollow"``; comments are
   stripped; ``script``/``style`` are dropped along with their content. Anything else (event
   handlers, ``style``, ``img``, ``svg``, ``iframe``...) is removed by nh3 even if step 1 were
   ever to let it through.
"""

from __future__ import annotations

import re

import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

# Longer input is cut before rendering: explanations are never this long, and the cap bounds
# the parser's and sanitiser's work on a hostile input.
MAX_MARKDOWN_CHARS = 400_000

ALLOWED_TAGS = frozenset(
    {
        "p",
        "br",
        "hr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "strong",
        "em",
        "del",
        "code",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "li",
        "a",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    }
)
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "ol": {"start"},
    "code": {"class"},
}
ALLOWED_URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"
# Removed together with their content (they can only appear if step 1 failed).
CLEAN_CONTENT_TAGS = frozenset({"script", "style"})

_CODE_CLASS_RE = re.compile(r"language-[a-z0-9+#-]+")
_OL_START_RE = re.compile(r"[0-9]{1,9}")


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    """Keep ``code`` classes only of the form ``language-x`` and ``ol start`` only if numeric."""
    if tag == "code" and attribute == "class":
        value = value.lower()
        return value if _CODE_CLASS_RE.fullmatch(value) else None
    if tag == "ol" and attribute == "start":
        return value if _OL_START_RE.fullmatch(value) else None
    return value


def _render_image_as_link(self, tokens, idx, options, env) -> str:
    """``![alt](src "title")`` → ``<a href="src" title="title">alt</a>`` (never ``<img>``)."""
    token = tokens[idx]
    src = token.attrGet("src") or ""
    title = token.attrGet("title")
    text = self.renderInlineAsText(token.children or [], options, env) or src
    title_attr = f' title="{escape(title)}"' if title else ""
    return f'<a href="{escape(src)}"{title_attr}>{escape(text)}</a>'


def _heading_tag(token, env) -> str:
    # The page's own headings (h1 title, h2 sections, h3 candidates) must never be outranked
    # by text a model or a contractor wrote: headings move down by the offset, to h6 at most.
    level = int(token.tag[1:]) + int((env or {}).get("heading_offset", 0))
    return f"h{min(max(level, 1), 6)}"


def _render_heading_open(self, tokens, idx, options, env) -> str:
    return f"<{_heading_tag(tokens[idx], env)}>"


def _render_heading_close(self, tokens, idx, options, env) -> str:
    return f"</{_heading_tag(tokens[idx], env)}>\n"


def _build_parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    md.add_render_rule("heading_open", _render_heading_open)
    md.add_render_rule("heading_close", _render_heading_close)
    md.add_render_rule("image", _render_image_as_link)
    # markdown-it emits <s> for ~~x~~; <del> is the tag on the allowlist.
    md.add_render_rule("s_open", lambda self, tokens, idx, options, env: "<del>")
    md.add_render_rule("s_close", lambda self, tokens, idx, options, env: "</del>")
    return md


_md = _build_parser()


# Headings inside a page section: h1 in the text becomes h4 (below the page's h1-h3).
PAGE_HEADING_OFFSET = 3


def render_markdown(text: str, *, heading_offset: int = 0) -> SafeString:
    """Untrusted Markdown ``text`` as sanitised HTML, safe to embed in a page (see module doc).
    ``heading_offset`` demotes every heading by that many levels (capped at h6)."""
    if not text:
        return mark_safe("")  # noqa: S308 - constant empty string
    text = str(text)[:MAX_MARKDOWN_CHARS]
    html = _md.render(text, {"heading_offset": heading_offset})
    cleaned = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(CLEAN_CONTENT_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_attribute_filter,
        strip_comments=True,
        link_rel=LINK_REL,
        url_schemes=set(ALLOWED_URL_SCHEMES),
    )
    return mark_safe(cleaned)  # noqa: S308 - sanitised by nh3 with a strict allowlist above
