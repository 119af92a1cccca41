"""The technical cause of a candidate's failure, made fit to keep for admins.

Contractors read `Candidate.error` (plain words, no model named); admins also get
`Candidate.failure_detail`: the HTTP status, exit code or stderr tail a provider reported.
That text comes from model servers and agents, which echo whatever they were sent (an
"invalid key sk-..." error, a traceback printing its environment), so before it is stored
every secret Marlin knows of is replaced, and whatever looks like a credential too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from tasks.providers.base import EndpointConfig, is_model_key_variable

MAX_CHARS = 4_000
# Most of the room goes to the end: stderr's last lines say why a process stopped.
_HEAD_CHARS = 600
REDACTED = "[secret]"
# Shorter values are too likely to occur in ordinary text to be replaced everywhere.
_MIN_SECRET_CHARS = 6

_CREDENTIAL_PATTERNS = [
    # Vendor key shapes: OpenAI/Anthropic sk-..., GitHub tokens, AWS access key ids, Slack.
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),
    # user:password@ in URLs.
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),
]
# A value after a name that says it is a secret: "Authorization: Bearer x", api_key=x,
# "x-api-key": "x", token=x, password: x.
_NAMED_SECRET_RE = re.compile(
    r"(?i)((?:authorization|x-api-key|api[_-]?key|access[_-]?token|token|secret|password)"
    r"[\"']?\s*[:=]\s*[\"']?(?:bearer\s+|basic\s+)?)[^\s\"',;}]+"
)
_BEARER_RE = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/\-]+=*")
# Control characters (terminal escapes) make no sense in a page or the admin; tabs and
# newlines stay.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def endpoint_secrets(endpoint: EndpointConfig) -> list[str]:
    """The values of the environment variables an endpoint is allowed to use (its key and
    those it hands to a coding agent), as they are now in this process."""
    names = [endpoint.api_key_env, *endpoint.parameters.get("pass_env", [])]
    return [
        os.environ[name]
        for name in names
        if isinstance(name, str) and name and is_model_key_variable(name) and name in os.environ
    ]


def scrub(text: str, *, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret value and credential-looking token replaced, control
    characters dropped and the length bounded (head and tail kept)."""
    for value in sorted({s for s in secrets if len(s) >= _MIN_SECRET_CHARS}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    for pattern in _CREDENTIAL_PATTERNS:
        text = pattern.sub(REDACTED, text)
    text = _NAMED_SECRET_RE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BEARER_RE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _CONTROL_RE.sub("", text).strip()
    if len(text) > MAX_CHARS:
        cut = "\n[...]\n"
        tail = MAX_CHARS - _HEAD_CHARS - len(cut)
        text = text[:_HEAD_CHARS] + cut + text[-tail:]
    return text
