"""Pygments, wrapped: everything returned here is escaped HTML, safe to mark safe."""

from __future__ import annotations

import functools
import html
from pathlib import PurePosixPath
from typing import Any

from django.core.cache import cache
from django.utils.safestring import SafeString, mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import DiffLexer, TextLexer, get_lexer_by_name
from pygments.token import STANDARD_TYPES

# Lexer chosen from the file name among these, never guessed from content (guess_lexer is
# slow, and content is untrusted); anything else is plain text.
_BY_SUFFIX = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript",
    ".cjs": "javascript", ".jsx": "jsx", ".ts": "typescript", ".tsx": "tsx", ".go": "go",
    ".rs": "rust", ".java": "java", ".kt": "kotlin", ".c": "c", ".h": "c", ".cc": "cpp",
    ".cpp": "cpp", ".hpp": "cpp", ".cs": "csharp", ".rb": "ruby", ".php": "php",
    ".swift": "swift", ".scala": "scala", ".sh": "bash", ".bash": "bash", ".zsh": "bash",
    ".sql": "sql", ".html": "html", ".htm": "html", ".css": "css", ".scss": "scss",
    ".json": "json", ".yml": "yaml", ".yaml": "yaml", ".toml": "toml", ".ini": "ini",
    ".cfg": "ini", ".md": "markdown", ".rst": "rst", ".xml": "xml", ".lua": "lua",
    ".hs": "haskell", ".ex": "elixir", ".exs": "elixir", ".erl": "erlang", ".r": "r",
    ".pl": "perl", ".dart": "dart", ".vue": "html", ".proto": "protobuf", ".tf": "terraform",
}  # fmt: skip
_BY_NAME = {"makefile": "make", "dockerfile": "docker", "cmakelists.txt": "cmake"}

_DIFF_FORMATTER = HtmlFormatter(cssclass="highlight diff", wrapcode=True)
_FILE_FORMATTER = HtmlFormatter(
    cssclass="highlight source", linenos="table", anchorlinenos=True, lineanchors="L",
    wrapcode=True,
)  # fmt: skip
_CACHE_VERSION = 1
_CACHE_SECONDS = 7 * 24 * 3600


def _alias_for(path: str) -> str | None:
    name = PurePosixPath(path).name.lower()
    return _BY_NAME.get(name) or _BY_SUFFIX.get(PurePosixPath(name).suffix)


def lexer_for(path: str) -> Lexer:
    alias = _alias_for(path)
    return get_lexer_by_name(alias) if alias else TextLexer()


@functools.lru_cache(maxsize=64)
def _line_lexer(alias: str | None) -> Lexer:
    """One lexer per language for highlight_lines, made once per process: looking a lexer up
    by name and building it costs about as much as lexing a short hunk. A lexer keeps no
    state between get_tokens calls, so sharing it is safe."""
    lexer = get_lexer_by_name(alias) if alias else TextLexer()
    # Lexers strip leading/trailing blank lines by default, which would shift every line.
    lexer.stripnl = False
    return lexer


def is_binary(data: bytes) -> bool:
    return b"\x00" in data[:8192]


def highlight_diff(diff: str) -> SafeString:
    # Pygments' HtmlFormatter escapes every character of its input: the output is safe.
    return mark_safe(highlight(diff, DiffLexer(), _DIFF_FORMATTER))  # noqa: S308


def highlight_file(*, path: str, text: str) -> SafeString:
    return mark_safe(highlight(text, lexer_for(path), _FILE_FORMATTER))  # noqa: S308


def highlight_file_cached(*, path: str, oid: str, data: bytes) -> SafeString:
    """Highlight once per (blob, lexer): the same blob at any commit renders the same."""
    lexer = lexer_for(path)
    key = f"hl:v{_CACHE_VERSION}:{oid}:{lexer.name}"
    html = cache.get(key)
    if html is None:
        html = highlight(data.decode("utf-8", errors="replace"), lexer, _FILE_FORMATTER)
        cache.set(key, html, _CACHE_SECONDS)
    return mark_safe(html)  # noqa: S308 - Pygments output (escaped), from our own cache


def stylesheet() -> str:
    return HtmlFormatter(style="default").get_style_defs(".highlight")


# --- Per-line highlighting (the diff viewer) ------------------------------------------------

_TOKEN_CLASSES: dict[object, str] = {}


def _token_class(ttype: Any) -> str:
    """The short CSS class HtmlFormatter would give the token (so syntax.css applies)."""
    cls = _TOKEN_CLASSES.get(ttype)
    if cls is None:
        suffix, parent = "", ttype
        name = STANDARD_TYPES.get(parent)
        while name is None:
            suffix = parent[-1] + suffix
            parent = parent.parent
            name = STANDARD_TYPES.get(parent)
        cls = _TOKEN_CLASSES[ttype] = name + suffix
    return cls


_SPANS: dict[tuple[Any, str], str] = {}
_SPANS_MAX = 200_000


def _span(ttype: Any, value: str) -> str:
    cls = _token_class(ttype)
    escaped = html.escape(value)
    return f'<span class="{cls}">{escaped}</span>' if cls else escaped


def highlight_lines(*, path: str, text: str) -> list[str]:
    """Escaped HTML for each line of `text` ("\\n"-separated), lexed as one whole.

    Lexing the whole text keeps multi-line strings and comments right; each line's HTML is
    balanced on its own (a token crossing a line break becomes one span per line), so the
    lines can go into separate table cells. Every character goes through html.escape.
    Returns exactly text.split("\\n") lines; if the lexer's output does not line up (it
    rewrites "\\r"), the lines are returned escaped but not highlighted.
    """
    expected = text.split("\n")
    if "\r" in text:
        # Pygments turns a lone "\r" into a line break, which can shift lines silently.
        return [html.escape(line) for line in expected]
    lexer = _line_lexer(_alias_for(path))
    lines: list[list[str]] = [[]]
    line = lines[0]
    spans = _SPANS if len(_SPANS) < _SPANS_MAX else _SPANS.clear() or _SPANS
    for ttype, value in lexer.get_tokens(text):
        if "\n" not in value:
            # Most tokens repeat (keywords, names, punctuation, indentation): their escaped
            # span is made once per process.
            piece = spans.get((ttype, value))
            if piece is None:
                piece = spans[(ttype, value)] = _span(ttype, value)
            line.append(piece)
            continue
        for index, part in enumerate(value.split("\n")):
            if index:
                line = []
                lines.append(line)
            if part:
                line.append(_span(ttype, part))
    # get_tokens ends the text with a newline when it lacks one: drop the extra empty line.
    while len(lines) > len(expected) and not lines[-1]:
        lines.pop()
    if len(lines) != len(expected):
        return [html.escape(line) for line in expected]
    return ["".join(parts) for parts in lines]
