"""Plain-text rules shared by every place that stores what people type."""

from __future__ import annotations


def normalise_newlines(text: str) -> str:
    """LF line endings only: browsers send CRLF, the API and models use LF, and an export
    must not mix the two."""
    return text.replace("\r\n", "\n").replace("\r", "\n")
