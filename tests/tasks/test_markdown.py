"""Model explanations render as Markdown, and nothing a model writes can run in the page."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.template import Context, Template
from django.utils.safestring import SafeString

from tasks.markdown import ALLOWED_TAGS, LINK_REL, MAX_MARKDOWN_CHARS, render_markdown


class _Collector(HTMLParser):
    """Every element (tag, attrs) in an HTML string, plus any comments."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_comment(self, data):
        self.comments.append(data)


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Collector()
    parser.feed(html)
    parser.close()
    return parser.elements


def hrefs(html: str) -> list[str]:
    return [attrs["href"] or "" for tag, attrs in elements(html) if "href" in attrs]


def url_scheme(url: str) -> str | None:
    """The scheme a browser would see (WHATWG URL parsing), or None for a relative URL."""
    url = url.strip("".join(chr(c) for c in range(0x21)))  # leading/trailing C0 and space
    url = re.sub(r"[\t\n\r]", "", url)  # browsers drop these anywhere
    match = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*):", url)
    return match.group(1).lower() if match else None


def assert_inert(html: str) -> None:
    """No markup outside the allowlist, no event handlers, no dangerous URLs, no comments."""
    parser = _Collector()
    parser.feed(html)
    parser.close()
    assert parser.comments == []
    for tag, attrs in parser.elements:
        assert tag in ALLOWED_TAGS, tag
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert name in {"href", "title", "rel", "start", "class"}, (tag, name)
            if name == "href":
                assert url_scheme(value or "") in {None, "http", "https", "mailto"}, value
    lowered = html.lower()
    for needle in ("<script", "<img", "<iframe", "<style", "<svg", "<!--", "<object", "<embed"):
        assert needle not in lowered, needle
    for href in hrefs(html):
        assert "javascript:" not in href.lower()
        assert "data:" not in href.lower()
        assert "vbscript:" not in href.lower()


def render_filter(text) -> str:
    return Template("{% load markdown %}{{ text|markdown }}").render(Context({"text": text}))


# --- rendering -------------------------------------------------------------------------------


def test_empty_input_renders_empty_safe_string():
    out = render_markdown("")
    assert out == ""
    assert isinstance(out, SafeString)


def test_returns_safe_string():
    assert isinstance(render_markdown("hi"), SafeString)


def test_headings():
    out = render_markdown("# One\n\n## Two\n\n###### Six")
    assert "<h1>One</h1>" in out
    assert "<h2>Two</h2>" in out
    assert "<h6>Six</h6>" in out


def test_lists():
    out = render_markdown("- a\n- b\n\n1. x\n2. y")
    assert "<ul>\n<li>a</li>\n<li>b</li>\n</ul>" in out
    assert "<ol>\n<li>x</li>\n<li>y</li>\n</ol>" in out


def test_ordered_list_start_is_kept():
    assert '<ol start="3">' in render_markdown("3. c\n4. d")


def test_emphasis_and_strikethrough():
    out = render_markdown("*em* **strong** ~~gone~~ `code`")
    assert "<em>em</em>" in out
    assert "<strong>strong</strong>" in out
    assert "<del>gone</del>" in out
    assert "<code>code</code>" in out


def test_blockquote_and_rule():
    out = render_markdown("> quoted\n\n---\n")
    assert "<blockquote>\n<p>quoted</p>\n</blockquote>" in out
    assert "<hr>" in out


def test_fenced_code_keeps_language_class():
    out = render_markdown("```python\nif a < b:\n    pass\n```")
    assert '<pre><code class="language-python">if a &lt; b:\n    pass\n</code></pre>' in out


def test_fenced_code_language_is_lowercased_and_may_have_symbols():
    assert '<code class="language-python">' in render_markdown("```Python\nx\n```")
    assert '<code class="language-c++">' in render_markdown("```c++\nx\n```")
    assert '<code class="language-c#">' in render_markdown("```c#\nx\n```")


def test_fenced_code_with_hostile_info_string_drops_class():
    out = render_markdown('```"><script>alert(1)</script>\nx\n```')
    assert "<pre><code>x\n</code></pre>" in out
    assert_inert(out)


def test_fenced_code_content_is_escaped():
    out = render_markdown("```html\n<script>alert(1)</script>\n```")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert_inert(out)


def test_tables_render_without_style():
    out = render_markdown("| a | b |\n|:--|--:|\n| 1 | 2 |\n")
    assert "<table>" in out
    assert "<thead>" in out and "<tbody>" in out
    assert "<th>a</th>" in out
    assert "<td>2</td>" in out
    assert "style" not in out


def test_links_get_rel_and_keep_title():
    out = render_markdown('[docs](https://example.com/a "The docs")')
    assert elements(out) == [
        ("p", {}),
        ("a", {"href": "https://example.com/a", "title": "The docs", "rel": LINK_REL}),
    ]


def test_mailto_and_autolinks_allowed():
    out = render_markdown("<https://example.com> <mailto:a@example.com>")
    assert hrefs(out) == ["https://example.com", "mailto:a@example.com"]
    assert all(attrs.get("rel") == LINK_REL for tag, attrs in elements(out) if tag == "a")


def test_image_becomes_plain_link_with_alt_text():
    """Decision: no remote images. ``![alt](src)`` renders as ``<a href="src">alt</a>``."""
    out = render_markdown('![a *cat*](https://evil.example/x.png "T")')
    assert "<img" not in out
    assert elements(out) == [
        ("p", {}),
        ("a", {"href": "https://evil.example/x.png", "title": "T", "rel": LINK_REL}),
    ]
    assert ">a cat</a>" in out


def test_image_without_alt_shows_its_url():
    out = render_markdown("![](https://evil.example/x.png)")
    assert "<img" not in out
    assert ">https://evil.example/x.png</a>" in out


def test_data_image_loses_its_href():
    out = render_markdown("![pic](data:image/png;base64,iVBORw0KGgo=)")
    assert "<img" not in out
    assert hrefs(out) == []
    assert_inert(out)


def test_input_is_capped():
    out = render_markdown("a" * (MAX_MARKDOWN_CHARS + 1000) + "TAIL")
    assert "TAIL" not in out
    assert out.count("a") >= MAX_MARKDOWN_CHARS


# --- XSS payloads ------------------------------------------------------------------------------

PAYLOADS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](javascript&#58;alert(1))",
    "[click](java\tscript:alert(1))",
    "[click](java&#x09;script:alert(1))",
    "[click]( javascript:alert(1) )",
    "[click](<javascript:alert(1)>)",
    "[click][ref]\n\n[ref]: javascript:alert(1)",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](vbscript:msgbox(1))",
    '<a href="javascript:alert(1)">x</a>',
    "<a href='javascript:alert(1)'>x</a>",
    "![img](https://evil.example/x.png)",
    '![img](https://evil.example/x.png" onerror="alert(1))',
    '<p onclick="alert(1)">hi</p>',
    '<div onmouseover="alert(1)">hi</div>',
    "<b onmouseover=alert(1)>hi</b>",
    '<iframe src="https://evil.example"></iframe>',
    "<style>body{display:none}</style>",
    '<span style="background:url(javascript:alert(1))">x</span>',
    "<!-- hidden comment -->",
    "text <!-- inline comment --> text",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<javascript:alert(1)>",
    "<JAVASCRIPT:alert(1)>",
    "<data:text/html,<script>alert(1)</script>>",
    '<object data="javascript:alert(1)"></object>',
    '<embed src="javascript:alert(1)">',
    '<form action="javascript:alert(1)"><button>x</button></form>',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="https://evil.example/">',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    "```\n</code></pre><script>alert(1)</script>\n```",
    "`<script>alert(1)</script>`",
    "| a |\n|---|\n| <img src=x onerror=alert(1)> |",
    "> <script>alert(1)</script>",
    "- <iframe src=x></iframe>",
    "# <svg onload=alert(1)>",
    '[ok](https://example.com "x\\" onmouseover=\\"alert(1)")',
    "[ok](https://example.com)<img src=x onerror=alert(1)>",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_is_inert(payload):
    assert_inert(render_markdown(payload))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_is_inert_through_template_filter(payload):
    assert_inert(render_filter(payload))


def test_raw_html_is_shown_as_text():
    out = render_markdown("<script>alert(1)</script>")
    assert out == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n"


def test_img_onerror_is_text_not_attribute():
    out = render_markdown("<img src=x onerror=alert(1)>")
    assert "<img" not in out
    assert all("onerror" not in attrs for _, attrs in elements(out))
    assert "&lt;img src=x onerror=alert(1)&gt;" in out


def test_javascript_link_is_not_a_link():
    out = render_markdown("[click](javascript:alert(1))")
    assert hrefs(out) == []
    assert "<a" not in out


def test_percent_encoded_scheme_is_only_a_relative_path():
    """``java%09script:`` is not a scheme (``%`` can't occur in one): a harmless relative URL."""
    out = render_markdown("[click](java&#x09;script:alert(1))")
    assert hrefs(out) == ["java%09script:alert(1)"]
    assert url_scheme(hrefs(out)[0]) is None
    assert url_scheme("  JAVA\tSCRIPT:alert(1)") == "javascript"


def test_comments_are_not_emitted_as_comments():
    out = render_markdown("a <!-- secret --> b")
    assert "<!--" not in out


# --- template filter -------------------------------------------------------------------------


def test_filter_output_is_safe_and_rendered_unescaped():
    out = render_filter("**bold** & <script>alert(1)</script>")
    assert "<strong>bold</strong>" in out
    assert "&amp;" in out
    assert "&lt;script&gt;" in out
    assert "&amp;lt;" not in out  # not double-escaped
    assert "<script" not in out


def test_filter_returns_safe_string_from_plain_str():
    from tasks.templatetags.markdown import markdown

    value = "# Title"
    assert type(value) is str
    out = markdown(value)
    assert isinstance(out, SafeString)
    assert "<h1>Title</h1>" in out


def test_filter_handles_none_and_empty():
    assert render_filter(None) == ""
    assert render_filter("") == ""


def test_filter_chains_after_a_plain_str_filter():
    """Used as ``{{ candidate.explanation|blinded:candidate|markdown }}``: the left filter
    returns a plain ``str``, which must be rendered as Markdown, not escaped first."""
    out = Template("{% load markdown %}{{ text|lower|markdown }}").render(
        Context({"text": "# HELLO <b>x</b>"})
    )
    assert out == "<h1>hello &lt;b&gt;x&lt;/b&gt;</h1>\n"
