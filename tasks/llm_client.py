"""The one interface to model providers. For now: the built-in demo provider, no network."""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import PurePosixPath


class ProviderError(Exception):
    """A provider could not answer. `transient` errors are worth retrying."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


@dataclass(frozen=True)
class GenerationRequest:
    system: str
    messages: list[dict[str, str]]
    # Repository context: every path at the pinned commit, and some files' text.
    paths: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GenerationResult:
    explanation: str
    diff: str


@dataclass(frozen=True)
class EndpointConfig:
    provider: str
    name: str
    model_id: str
    parameters: dict


def generate(*, endpoint: EndpointConfig, request: GenerationRequest) -> GenerationResult:
    if endpoint.provider == "demo":
        return _demo_generate(endpoint, request)
    # Said to contractors: it must not hint at which provider sits behind the slot.
    raise ProviderError("The model is not available right now.")


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


def _demo_generate(endpoint: EndpointConfig, request: GenerationRequest) -> GenerationResult:
    """A deterministic, plausible answer that edits a real file of the pinned commit."""
    # Only files ending in a newline, so the diff needs no "No newline at end of file" marker.
    paths = sorted(p for p, text in request.files.items() if text.endswith("\n"))
    if not paths:
        raise ProviderError("The demo model found no readable text file in the repository.")
    prompt = request.messages[-1]["content"] if request.messages else ""
    digest = hashlib.sha256(f"{endpoint.name}\n{prompt}".encode()).digest()
    path = paths[digest[0] % len(paths)]
    original = request.files[path]
    lines = [line + "\n" for line in original.removesuffix("\n").split("\n")]
    summary = " ".join(prompt.split())[:72] or "the requested change"
    style = digest[1] % 2
    if style == 0:
        note = [_comment(path, f"TODO(demo): {summary}") + "\n"]
        insert_at = 0
        how = f"adds a note at the top of `{path}` recording the request"
    else:
        note = ["\n", _comment(path, f"Demo change: {summary}") + "\n"]
        insert_at = len(lines)
        how = f"appends a short note to the end of `{path}`"
    changed = lines[:insert_at] + note + lines[insert_at:]
    diff = "".join(difflib.unified_diff(lines, changed, fromfile=f"a/{path}", tofile=f"b/{path}"))
    explanation = (
        "**Demo output** (built-in demo model, not a real model).\n\n"
        f"This change {how}. A real model would implement: {summary}"
    )
    return GenerationResult(explanation=explanation, diff=diff)
