"""Reading a catalogue file: GitHub API repository objects (JSON array or JSONL) or CSV.

The file is read incrementally, one row at a time, so memory does not grow with its size.
Every row is checked on its own; a bad row is reported with its line and reason and the
good rows still import. Nothing here writes: repos.catalogue_imports does.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import queue
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, TypeVar

import orjson
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
    # The byte offset just past this row in the file: where a resumed import starts.
    end: int = 0


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
    if not isinstance(value, str) or len(value) > 64 or "\x00" in value:
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
    # The usual address needs no check: full_name matched _FULL_NAME_RE above.
    usual_html_url = f"https://github.com/{full_name}"
    html_url = _text(obj, "html_url", limit=301) or usual_html_url
    if html_url != usual_html_url and not is_web_url(html_url):
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


# A JSONL line or a JSON array item longer than this is refused (and skipped) without ever
# being held whole: one 200 MB line must not cost 200 MB.
MAX_ROW_BYTES = 1024 * 1024
_CHUNK = 64 * 1024
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Record:
    """One row as read from the file, before it is checked: `obj` is the decoded object or
    the RowError that explains why it could not be decoded. `end` is the byte offset just
    past the row, so an import can resume there."""

    line: int
    obj: object
    end: int


def file_format(filename: str, head: bytes) -> str:
    """The kind of file (csv, json for an array, jsonl) from its name and first bytes."""
    if filename.lower().endswith(".csv"):
        return "csv"
    return "json" if head.removeprefix(_BOM).lstrip().startswith(b"[") else "jsonl"


def _lines(stream: BinaryIO, offset: int) -> Iterator[tuple[bytes | None, int]]:
    """Each line of the file as bytes with the offset just past it; None for a line longer
    than MAX_ROW_BYTES, which is skipped in chunks rather than read whole."""
    while True:
        line = stream.readline(MAX_ROW_BYTES + 1)
        if not line:
            return
        offset += len(line)
        if len(line) > MAX_ROW_BYTES and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = stream.readline(_CHUNK)
                offset += len(line)
            yield None, offset
            continue
        yield line, offset


def _jsonl_records(stream: BinaryIO, *, offset: int, line: int) -> Iterator[Record]:
    for raw, end in _lines(stream, offset):
        line += 1
        if raw is None:
            yield Record(line, RowError(f"the line is longer than {MAX_ROW_BYTES} bytes"), end)
            continue
        if line == 1:
            raw = raw.removeprefix(_BOM)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield Record(line, RowError("the line is not UTF-8 text"), end)
            continue
        if not text.strip():
            continue
        try:
            # orjson: a third of json's time per row (a GitHub object is ~1 KB of fields we
            # mostly ignore). It refuses what json let through to fail later or never: NaN,
            # a lone surrogate (PostgreSQL cannot store it), nesting past 1,024 levels.
            yield Record(line, orjson.loads(text), end)
        except orjson.JSONDecodeError as exc:
            yield Record(line, RowError(f"not valid JSON: {exc.msg}"), end)


def _csv_records(stream: BinaryIO, *, offset: int, line: int) -> Iterator[Record]:
    # The header is read again on a resume; the rows then continue from `offset`.
    stream.seek(0)
    header_raw = stream.readline(MAX_ROW_BYTES + 1)
    try:
        header_text = header_raw.removeprefix(_BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RowError("the file is not UTF-8 text") from exc
    fieldnames = next(csv.reader([header_text]), [])
    if "full_name" not in fieldnames:
        raise RowError("the CSV needs a header row with at least a full_name column")
    if offset == 0:
        offset, line = len(header_raw), 1
    stream.seek(offset)
    consumed = [offset]

    def texts() -> Iterator[str]:
        # csv pulls exactly the lines one record needs (more for a quoted newline), so the
        # bytes consumed when a record comes out end exactly at that record.
        for raw, end in _lines(stream, offset):
            consumed[0] = end
            if raw is None:
                raise RowError(f"the CSV has a line longer than {MAX_ROW_BYTES} bytes")
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RowError("the file is not UTF-8 text") from exc

    reader = csv.DictReader(texts(), fieldnames=fieldnames)
    try:
        for record in reader:
            number = line + reader.line_num
            if None in record:
                yield Record(
                    number, RowError("the row has more cells than the header"), consumed[0]
                )
                continue
            values = {k: v for k, v in record.items() if v not in (None, "")}
            yield Record(number, values, consumed[0])
    except csv.Error as exc:
        # The csv module cannot resume after a broken row (e.g. an over-long field).
        raise RowError(f"the CSV cannot be read past line {line + reader.line_num}: {exc}") from exc
    except RowError as exc:
        raise RowError(f"{exc} (line {line + reader.line_num + 1})") from exc


class _TextWindow:
    """A sliding window of decoded text over a binary stream that knows, for any character
    position, how many bytes came before it (so a JSON array can resume mid-file)."""

    def __init__(self, stream: BinaryIO, offset: int) -> None:
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.text = ""
        self.start = offset  # byte offset of text[0]
        self.eof = False

    def fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.stream.read(_CHUNK)
        try:
            self.text += self.decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise RowError(f"the file is not UTF-8 text (near byte {self.start})") from exc
        self.eof = not chunk
        return True

    def skip_space(self) -> str:
        """The next non-blank character ("" at the end), with the blanks before it dropped."""
        while True:
            stripped = self.text.lstrip()
            self.drop(len(self.text) - len(stripped))
            if self.text or not self.fill():
                return self.text[:1]

    def drop(self, chars: int) -> None:
        if chars:
            self.start += len(self.text[:chars].encode("utf-8"))
            self.text = self.text[chars:]


def _json_array_records(stream: BinaryIO, *, offset: int, line: int) -> Iterator[Record]:
    decoder = json.JSONDecoder()
    window = _TextWindow(stream, offset)
    if offset == 0:
        window.fill()
        if window.text.startswith("\ufeff"):
            window.drop(1)
        if window.skip_space() != "[":
            raise RowError("the file is not valid JSON: it does not start with [")
        window.drop(1)
        expect_item = True  # the first item, or "]"
    else:
        expect_item = False  # resuming just after an item: "," or "]"
    while True:
        char = window.skip_space()
        if not char:
            raise RowError(f"the file is not valid JSON: it ends after item {line} without ]")
        if char == "]":
            window.drop(1)
            if window.skip_space():
                raise RowError(
                    f"the file is not valid JSON: text after the closing ] of item {line}"
                )
            return
        if not expect_item:
            if char != ",":
                raise RowError(f"the file is not valid JSON after item {line}: expected , or ]")
            window.drop(1)
            window.skip_space()
        while True:
            try:
                obj, end = decoder.raw_decode(window.text)
            except json.JSONDecodeError as exc:
                if window.eof or len(window.text) > MAX_ROW_BYTES:
                    raise RowError(
                        f"the file is not valid JSON (item {line + 1}: {exc.msg})"
                    ) from exc
                window.fill()
                continue
            except RecursionError as exc:
                raise RowError(
                    f"the file is not valid JSON (item {line + 1}: nested too deeply)"
                ) from exc
            # A value that reaches the end of the window may go on in the next chunk (a number).
            if end == len(window.text) and not window.eof:
                window.fill()
                continue
            break
        window.drop(end)
        line += 1
        expect_item = False
        # A JSON array has no per-object lines; report the item's position instead.
        yield Record(line, obj, window.start)


def records(stream: BinaryIO, *, filename: str, offset: int = 0, line: int = 0) -> Iterator[Record]:
    """Read the file's rows one at a time, from `offset` (just past row number `line`, as a
    Record's `end` and `line` said), holding at most one row in memory.

    Raises RowError, after the rows before it, when the file cannot be read past a point.
    """
    stream.seek(0)
    head = stream.read(4096)
    stream.seek(offset)
    kind = file_format(filename, head)
    if kind == "csv":
        return _csv_records(stream, offset=offset, line=line)
    if kind == "json":
        return _json_array_records(stream, offset=offset, line=line)
    return _jsonl_records(stream, offset=offset, line=line)


def check(record: Record, *, allowed_bases: list[str]) -> ParsedLine:
    """The record checked: a row to import, or the reason it cannot be."""
    if isinstance(record.obj, RowError):
        return ParsedLine(line=record.line, row=None, error=str(record.obj), end=record.end)
    try:
        row = normalise(record.obj, allowed_bases=allowed_bases)
    except RowError as exc:
        return ParsedLine(line=record.line, row=None, error=str(exc), end=record.end)
    return ParsedLine(line=record.line, row=row, error=None, end=record.end)


def parse_stream(
    stream: BinaryIO, *, filename: str, allowed_bases: list[str], offset: int = 0, line: int = 0
) -> Iterator[ParsedLine]:
    """Yield each row of the file, checked, reading it incrementally; raises RowError when
    the file cannot be read past a point (the rows before it have been yielded)."""
    for record in records(stream, filename=filename, offset=offset, line=line):
        yield check(record, allowed_bases=allowed_bases)


def parse(content: bytes, *, filename: str, allowed_bases: list[str]) -> Iterator[ParsedLine]:
    """parse_stream over bytes already in memory."""
    return parse_stream(io.BytesIO(content), filename=filename, allowed_bases=allowed_bases)


T = TypeVar("T")
_END = object()


def read_ahead(
    items: Iterable[T],
    *,
    chunk: int = 250,
    depth: int = 8,
    gate: threading.Event | None = None,
) -> Iterator[T]:
    """The items of `items`, in order, made by a thread of their own up to chunk * depth
    ahead of the caller.

    Reading and checking rows is pure Python; writing them is mostly waiting on the database,
    which lets go of the GIL. With this the next rows are read while the last are written,
    on a second core when there is one. An exception from `items` is raised here, after the
    items before it. Closing the generator (or leaving the loop) stops the thread.

    `gate`: set by the caller while it waits on the database. Once half the queue is ahead,
    the thread reads more only while the gate is set. Without it, the thread read whenever
    the caller took a chunk: while the caller ran Python itself (its short statements each
    wait for the GIL back), so the two shared one core, and while the caller then waited on
    the long statement the queue was full and the thread idle (bench.catalogue_import).
    """
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    enough = max(1, depth // 2)

    def put(value: object) -> bool:
        while not stop.is_set():
            try:
                out.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def wait_for_the_gate() -> None:
        while gate is not None and not gate.is_set() and out.qsize() >= enough:
            # A short wait: the caller may also have taken the queue below half meanwhile.
            if stop.is_set() or gate.wait(timeout=0.005):
                return

    def produce() -> None:
        made: list[T] = []
        try:
            wait_for_the_gate()
            for item in items:
                made.append(item)
                if len(made) >= chunk:
                    if not put(made):
                        return
                    made = []
                    wait_for_the_gate()
        except Exception as exc:
            if put(made):
                put(exc)
            return
        if put(made):
            put(_END)

    thread = threading.Thread(target=produce, name="catalogue-read-ahead", daemon=True)
    thread.start()
    try:
        while (value := out.get()) is not _END:
            if isinstance(value, Exception):
                raise value
            yield from value
    finally:
        stop.set()
        thread.join()
