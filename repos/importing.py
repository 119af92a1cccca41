"""Reading a catalogue file: GitHub API repository objects (JSON array or JSONL) or CSV.

Every row is checked on its own; a bad row is reported with its line and reason and the
good rows still import. Nothing here writes: repos.services.repository_import does.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.utils.dateparse import parse_datetime

from repos.git_client import UnsafeRepositoryUrl, validate_clone_url
from repos.models import is_web_url

_FULL_NAME_RE = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}/[A-Za-z0-9._-]{1,100}$"
)
_MAX_DESCRIPTION = 2000
_MAX_TOPICS = 50
_TOPIC_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")


class RowError(ValueError):
    """One row cannot be imported; the message says why."""


@dataclass(frozen=True)
class RepositoryRow:
    full_name: str
    clone_url: str
    html_url: str
    default_branch: str
    language: str
    stars: int
    description: str
    license: str
    topics: list[str]
    is_archived: bool
    size_kb: int
    pushed_at: datetime | None


@dataclass(frozen=True)
class ParsedLine:
    line: int
    row: RepositoryRow | None
    error: str | None


def _text(obj: dict, key: str, *, limit: int) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RowError(f"{key} must be text")
    if "\x00" in value:
        raise RowError(f"{key} contains a NUL character")
    return value.strip()[:limit]


def _count(obj: dict, key: str) -> int:
    value = obj.get(key, 0)
    if value in (None, ""):
        return 0
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        if len(value.strip()) > 10:
            raise RowError(f"{key} must be a whole number of at least 0")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 2**31 - 1:
        raise RowError(f"{key} must be a whole number of at least 0")
    return value


def _license(obj: dict) -> str:
    value = obj.get("license")
    if isinstance(value, dict):
        value = value.get("spdx_id") or ""
    if value in (None, "NOASSERTION"):
        return ""
    if not isinstance(value, str) or len(value) > 64:
        raise RowError("license must be an SPDX id")
    return value.strip()


def _topics(obj: dict) -> list[str]:
    value = obj.get("topics") or []
    if isinstance(value, str):
        value = [t for t in re.split(r"[\s,;|]+", value) if t]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise RowError("topics must be a list of names")
    topics = list(dict.fromkeys(t.strip().lower() for t in value))[:_MAX_TOPICS]
    bad = [t for t in topics if not _TOPIC_RE.match(t)]
    if bad:
        raise RowError(f"topic {bad[0][:60]!r} is not a valid GitHub topic")
    return topics


def _bool(obj: dict, key: str) -> bool:
    value = obj.get(key, False)
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return bool(value)


def normalise(obj: object, *, allowed_bases: list[str]) -> RepositoryRow:
    """Check one repository object and return the fields Marlin keeps."""
    if not isinstance(obj, dict):
        raise RowError("expected a repository object")
    full_name = _text(obj, "full_name", limit=200)
    if not full_name:
        raise RowError("full_name is missing")
    if not _FULL_NAME_RE.match(full_name) or full_name.endswith((".", "/.", "/..")):
        raise RowError(f"full_name {full_name[:120]!r} is not OWNER/NAME")
    clone_url = _text(obj, "clone_url", limit=300) or f"https://github.com/{full_name}.git"
    try:
        clone_url = validate_clone_url(clone_url, allowed_bases=allowed_bases)
    except UnsafeRepositoryUrl as exc:
        raise RowError(f"clone_url refused: {exc.message}") from exc
    if not clone_url.lower().endswith(f"/{full_name.lower()}.git"):
        raise RowError("clone_url does not match full_name")
    pushed_raw = obj.get("pushed_at")
    try:
        pushed_at = (
            parse_datetime(pushed_raw) if isinstance(pushed_raw, str) and pushed_raw else None
        )
    except ValueError:  # well-formed but impossible, like month 13
        pushed_at = None
    if pushed_raw and pushed_at is None:
        raise RowError("pushed_at is not an ISO 8601 date-time")
    html_url = _text(obj, "html_url", limit=301) or f"https://github.com/{full_name}"
    if not is_web_url(html_url):
        raise RowError("html_url must be an http:// or https:// address without a user name")
    default_branch = _text(obj, "default_branch", limit=255) or "main"
    if default_branch.startswith("-") or any(ord(c) < 0x21 for c in default_branch):
        raise RowError("default_branch is not a valid branch name")
    return RepositoryRow(
        full_name=full_name,
        clone_url=clone_url,
        html_url=html_url,
        default_branch=default_branch,
        language=_text(obj, "language", limit=64),
        stars=_count(obj, "stargazers_count"),
        description=_text(obj, "description", limit=_MAX_DESCRIPTION),
        license=_license(obj),
        topics=_topics(obj),
        is_archived=_bool(obj, "archived"),
        size_kb=_count(obj, "size"),
        pushed_at=pushed_at,
    )


def _json_objects(text: str) -> Iterator[tuple[int, object]]:
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RowError(f"the file is not valid JSON (line {exc.lineno}: {exc.msg})") from exc
        # A JSON array has no per-object lines; report the item's position instead.
        yield from enumerate(data, start=1)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, RowError(f"not valid JSON: {exc.msg}")


def _csv_objects(text: str) -> Iterator[tuple[int, object]]:
    reader = csv.DictReader(io.StringIO(text))
    try:
        if not reader.fieldnames or "full_name" not in reader.fieldnames:
            raise RowError("the CSV needs a header row with at least a full_name column")
        for record in reader:
            if None in record:
                yield reader.line_num, RowError("the row has more cells than the header")
                continue
            yield reader.line_num, {k: v for k, v in record.items() if v not in (None, "")}
    except csv.Error as exc:
        # The csv module cannot resume after a broken row (e.g. an over-long field).
        raise RowError(f"the CSV cannot be read past line {reader.line_num}: {exc}") from exc


def parse(content: bytes, *, filename: str, allowed_bases: list[str]) -> Iterator[ParsedLine]:
    """Yield each row of the file, checked; raises RowError when the file as a whole is unusable."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RowError("the file is not UTF-8 text") from exc
    is_csv = filename.lower().endswith(".csv")
    source = _csv_objects(text) if is_csv else _json_objects(text)
    for line, obj in source:
        if isinstance(obj, RowError):
            yield ParsedLine(line=line, row=None, error=str(obj))
            continue
        try:
            yield ParsedLine(line=line, row=normalise(obj, allowed_bases=allowed_bases), error=None)
        except RowError as exc:
            yield ParsedLine(line=line, row=None, error=str(exc))
