"""Writing checked catalogue rows: on PostgreSQL a COPY into a staging table, then one
set-based INSERT ... SELECT ... ON CONFLICT; elsewhere (the SQLite default) bulk upserts.

Sent as multi-row INSERT ... ON CONFLICT statements, a 10k-row import cost 2.9-3.8x a COPY of
the same rows: every row was a parameter list built, sent and planned, then conflict-checked
and written into two trigram indexes one at a time. Here the rows stream into a temporary
table in COPY's text format (no indexes, no WAL) while they are read, and one statement
upserts them all, sorted by name: the index work is then the same as a COPY's.

Catalogue data (IMPORT_FIELDS) is overwritten; whatever admins and workers own on an
existing row (enabled flag, quota, clone state, task count, created_at) is kept.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice

from django.db import connection, transaction
from django.utils import timezone

from repos.importing import RepositoryRow
from repos.models import Repository

# What a re-import overwrites on an existing row.
IMPORT_FIELDS = [
    "clone_url", "html_url", "default_branch", "language", "stars", "description", "license",
    "topics", "is_archived", "size_kb", "pushed_at", "search_text", "topics_text", "updated_at",
]  # fmt: skip
# The staging table's columns: `seq` is the row's place in the input (the last of a name
# repeated in one input wins, as it would in one upsert after another).
_STAGED = ["full_name", *(name for name in IMPORT_FIELDS if name != "updated_at")]
_STAGE = "repos_catalogue_stage"
# Characters sent to COPY at a time: a job's batch of 1,000 rows goes in one or two, since
# every send lets another thread take the GIL and getting it back can take 5 ms.
_COPY_CHUNK = 1024 * 1024
# Rows per bulk upsert where COPY is not available.
_BULK_ROWS = 1000
# Characters COPY's text format gives a meaning; each becomes a backslash escape. (In CSV
# format `\.` alone on a line ends the data unless it is quoted; in the text format every
# backslash of a value is doubled, so a value can never end the data.)
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_SPECIAL = re.compile(r"[\\\n\r]")
_json = json.JSONEncoder().encode
_NULL = "\\N"


def repository_upsert_rows(
    *, rows: Iterable[RepositoryRow], writing: threading.Event | None = None
) -> tuple[int, int]:
    """Upsert checked rows by full_name; returns (created, updated), counting a name once.

    `rows` is consumed once, as it comes (a generator reading a file is fine: on PostgreSQL
    the rows stream into COPY and are never all held). Writing the same rows twice leaves the
    same catalogue. Runs in a transaction (a savepoint inside the caller's): an exception,
    from the database or from `rows` itself, leaves nothing of these rows behind.
    `writing`: set while the rows are written and this thread only waits on the database
    (importing.read_ahead reads the next rows then).
    """
    writing = writing or threading.Event()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            return _copy_upsert(rows, writing)
        writing.set()
        try:
            return _bulk_upsert(rows)
        finally:
            writing.clear()


# --- PostgreSQL ----------------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.translate(_ESCAPES)


def _timestamp(value: datetime | None) -> str:
    if value is None:
        return _NULL
    if timezone.is_naive(value):
        # As the ORM stores a naive datetime: in the default time zone, not the session's.
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return value.isoformat()


def copy_line(seq: int, row: RepositoryRow) -> str:
    """One staging row in COPY's text format: tab-separated, every text field escaped."""
    fields = (
        str(seq),
        row.full_name,
        row.clone_url,
        row.html_url,
        row.default_branch,
        row.language,
        str(row.stars),
        row.description,
        row.license,
        _json(row.topics),
        "t" if row.is_archived else "f",
        str(row.size_kb),
        _timestamp(row.pushed_at),
        Repository.search_text_for(row.full_name, row.description, row.topics),
        Repository.topics_text_for(row.topics),
    )
    line = "\t".join(fields)
    # Most rows need no escape: then the line has exactly its separators' tabs and no
    # other special character (two scans instead of one per field).
    if line.count("\t") != len(fields) - 1 or _SPECIAL.search(line):
        line = "\t".join(field if field is _NULL else _escape(field) for field in fields)
    if "\x00" in line:
        # The row checks refuse NUL; PostgreSQL text cannot hold one at all.
        raise ValueError(f"{row.full_name}: a catalogue row cannot contain a NUL character")
    return line + "\n"


class _CopySource(io.TextIOBase):
    """The lines of an iterator as the file psycopg2's copy_expert reads, a chunk at a time,
    so the rows go to the server while the next ones are still being read."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        # psycopg2 turns an exception in read() into QueryCanceled; the caller re-raises this.
        self.error: Exception | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        chunk: list[str] = []
        length = 0
        try:
            for line in self._lines:
                chunk.append(line)
                length += len(line)
                if size is not None and 0 <= size <= length:
                    break
        except Exception as exc:
            self.error = exc
            raise
        return "".join(chunk)


def _staging_ddl() -> str:
    fields = [Repository._meta.get_field(name) for name in _STAGED]
    columns = ", ".join(f"{f.column} {f.db_type(connection)}" for f in fields)
    # ON COMMIT DROP as well as the DROP below: a failed import leaves no table behind.
    return f"CREATE TEMPORARY TABLE {_STAGE} (seq integer, {columns}) ON COMMIT DROP"


def _upsert_sql() -> tuple[str, list[object]]:
    """INSERT ... SELECT from the staging table, one row per name (its last), in name order
    (two imports at once then lock rows in the same order and cannot deadlock), with the
    model's defaults for the columns an import never sets. It answers (names, created)."""
    meta = Repository._meta
    qn = connection.ops.quote_name
    now = timezone.now()
    columns: list[str] = []
    values: list[str] = []
    params: list[object] = []
    for field in meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(qn(field.column))
        if field.name in _STAGED:
            values.append(f"s.{qn(field.column)}")
            continue
        value = now if field.name in ("created_at", "updated_at") else field.get_default()
        values.append(f"%s::{field.cast_db_type(connection)}")
        params.append(field.get_db_prep_save(value, connection))
    table = qn(meta.db_table)
    updates = ", ".join(
        f"{qn(column)} = EXCLUDED.{qn(column)}" for column in _columns(IMPORT_FIELDS)
    )
    compared = _columns(_STAGED[1:])
    # A row whose catalogue data is already what the file says is left alone: a re-import of
    # an unchanged catalogue then writes no new row versions (each would add entries to
    # every index, the two trigram indexes too) and keeps updated_at, which the clone reaper
    # reads. It still counts as updated, as before. xmax is 0 on a row version this
    # statement inserted and set on one it updated: the usual way to tell them apart.
    sql = (
        f"WITH source AS ("  # noqa: S608 - names from the model's metadata, values are params
        f"SELECT DISTINCT ON (s.full_name) {', '.join(values)} FROM {_STAGE} s "
        f"ORDER BY s.full_name, s.seq DESC), "
        f"written AS ("
        f"INSERT INTO {table} AS t ({', '.join(columns)}) SELECT * FROM source "
        f"ON CONFLICT (full_name) DO UPDATE SET {updates} "
        f"WHERE ({', '.join(f't.{qn(c)}' for c in compared)}) IS DISTINCT FROM "
        f"({', '.join(f'EXCLUDED.{qn(c)}' for c in compared)}) "
        f"RETURNING xmax = 0 AS created) "
        f"SELECT (SELECT count(*) FROM source), (SELECT count(*) FROM written WHERE created)"
    )
    return sql, params


def _columns(names: list[str]) -> list[str]:
    return [Repository._meta.get_field(name).column for name in names]


def _copy_upsert(rows: Iterable[RepositoryRow], writing: threading.Event) -> tuple[int, int]:
    columns = ", ".join(["seq", *(Repository._meta.get_field(n).column for n in _STAGED)])
    lines = (copy_line(seq, row) for seq, row in enumerate(rows))
    sql, params = _upsert_sql()
    with connection.cursor() as cursor:
        cursor.execute(_staging_ddl())
        source = _CopySource(lines)
        try:
            # The size positionally: Django's debug cursor wrapper takes no keywords.
            cursor.copy_expert(f"COPY {_STAGE} ({columns}) FROM STDIN", source, _COPY_CHUNK)
        except Exception:
            if source.error is not None:
                # The input's own error (a file unreadable past a point), not the database's.
                raise source.error from None
            raise
        writing.set()
        try:
            cursor.execute(sql, params)
        finally:
            writing.clear()
        written, created = cursor.fetchone()
        cursor.execute(f"DROP TABLE {_STAGE}")
    return created, written - created


# --- Other databases -----------------------------------------------------------------------


def _repository(row: RepositoryRow, now: datetime) -> Repository:
    return Repository(
        full_name=row.full_name,
        clone_url=row.clone_url,
        html_url=row.html_url,
        default_branch=row.default_branch,
        language=row.language,
        stars=row.stars,
        description=row.description,
        license=row.license,
        topics=row.topics,
        is_archived=row.is_archived,
        size_kb=row.size_kb,
        pushed_at=row.pushed_at,
        search_text=Repository.search_text_for(row.full_name, row.description, row.topics),
        topics_text=Repository.topics_text_for(row.topics),
        created_at=now,
        updated_at=now,
    )


def _bulk_upsert(rows: Iterable[RepositoryRow]) -> tuple[int, int]:
    """The slower path (SQLite): multi-row upserts of up to _BULK_ROWS names. A name already
    written by this call counts once, as on PostgreSQL."""
    seen: set[str] = set()
    created = updated = 0
    now = timezone.now()
    rows = iter(rows)
    while chunk := list(islice(rows, _BULK_ROWS)):
        # A name repeated in the chunk: the last occurrence wins, as in an upsert.
        by_name = {row.full_name: row for row in chunk}
        names = list(by_name)
        existing = set(
            Repository.objects.filter(full_name__in=names).values_list("full_name", flat=True)
        )
        Repository.objects.bulk_create(
            [_repository(by_name[name], now) for name in names],
            update_conflicts=True,
            unique_fields=["full_name"],
            update_fields=IMPORT_FIELDS,
        )
        fresh = set(names) - seen
        created += len(fresh - existing)
        updated += len(fresh & existing)
        seen.update(names)
    return created, updated
