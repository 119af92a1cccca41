"""The built-in demo model: deterministic, no network, edits a real file of the commit."""

from __future__ import annotations

import difflib
import hashlib
from pathlib import PurePosixPath

from tasks.providers.base import EndpointConfig, GenerationRequest, ProviderAnswer, ProviderError

_COMMENT_PREFIX = {
    ".py": "# ",
    ".sh": "# ",
    ".rb": "# ",
    ".toml": "# ",
    ".yml": "# ",
    ".yaml": "# ",
}
_SLASH_SUFFIXES = {".js", ".ts", ".go", ".rs", ".java", ".c", ".h", ".cpp", ".css"}


def _comment(path: str, text: str) -> str:
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in _COMMENT_PREFIX:
        return _COMMENT_PREFIX[suffix] + text
    if suffix in _SLASH_SUFFIXES:
        return "// " + text
    return text


def generate(endpoint: EndpointConfig, request: GenerationRequest) -> ProviderAnswer:
    """A plausible answer: an explanation and a diff that touches a real file."""
    # Only files ending in a newline, so the diff needs no "No newline at end of file" marker.
    paths = sorted(p for p, text in request.files.items() if text.endswith("\n"))
    if not paths:
        raise ProviderError("The demo model found no readable text file in the repository.")
    prompt = request.messages[-1]["content"] if request.messages else ""
    digest = hashlib.sha256(f"{endpoint.name}\n{prompt}".encode()).digest()
    path = paths[digest[0] % len(paths)]
    lines = [line + "\n" for line in request.files[path].removesuffix("\n").split("\n")]
    summary = " ".join(prompt.split())[:72] or "the requested change"
    # Two demo endpoints never make the very same change (that would be a tie by rule): each
    # signs its note with a tag of its own name, which reveals nothing of the name.
    tag = hashlib.sha256(endpoint.name.encode()).hexdigest()[:8]
    if digest[1] % 2 == 0:
        note, insert_at = [_comment(path, f"TODO(demo {tag}): {summary}") + "\n"], 0
        how = f"adds a note at the top of `{path}` recording the request"
    else:
        note = ["\n", _comment(path, f"Demo change {tag}: {summary}") + "\n"]
        insert_at = len(lines)
        how = f"appends a short note to the end of `{path}`"
    changed = lines[:insert_at] + note + lines[insert_at:]
    diff = "".join(difflib.unified_diff(lines, changed, fromfile=f"a/{path}", tofile=f"b/{path}"))
    explanation = (
        "**Demo output** (built-in demo model, not a real model).\n\n"
        f"This change {how}. A real model would implement: {summary}"
    )
    return ProviderAnswer(text=explanation, diff=diff)
