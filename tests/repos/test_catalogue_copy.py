"""The catalogue's write path (issue 19): COPY into a staging table and one set-based upsert on
PostgreSQL, bulk upserts elsewhere. Both keep what admins and workers own on a row, write a
name repeated in one input once (its last row), store any text byte for byte, and leave
nothing behind when an import fails."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from marlin.exceptions import ApplicationError
from repos import catalogue_copy, importing
from repos.catalogue_imports import catalogue_import_execute, catalogue_import_start
from repos.models import CatalogueImport, Repository
from repos.services import repository_import
from tests.repos.test_repository_import import gh

BASES = ["https://github.com"]
HOSTILE = (
    "tab\there, new\nline, CR\r\nend, back\\slash \\N \\. and\n\\.\nalone, "
    'quote " comma , semicolon ; \\\\double, \\t literal, émoji 🐍, \x7f, \u2028'
)


def row(full_name: str, **extra) -> importing.RepositoryRow:
    return importing.normalise(gh(full_name, **extra), allowed_bases=BASES)


def _jsonl(*objects: dict) -> bytes:
    return "".join(json.dumps(o) + "\n" for o in objects).encode()


def _import_in_memory(content: bytes) -> tuple[int, int]:
    report = repository_import(content=content, filename="r.jsonl")
    return report.created, report.updated


def _import_as_job(content: bytes) -> tuple[int, int]:
    job = catalogue_import_start(
        by=None, upload=ContentFile(content), filename="r.jsonl", enqueue=False
    )
    job = catalogue_import_execute(import_id=job.pk)
    assert job.status == CatalogueImport.Status.SUCCEEDED, job.error
    return job.rows_created, job.rows_updated


def _bulk(rows):
    # The SQLite default's path, run here on PostgreSQL: same rules, other statements.
    with transaction.atomic():
        return catalogue_copy._bulk_upsert(rows)


ENTRY_POINTS = [_import_in_memory, _import_as_job]
PATHS = [catalogue_copy.repository_upsert_rows, _bulk]


def _upsert(path, rows):
    if path is catalogue_copy.repository_upsert_rows:
        return path(rows=rows)
    return path(rows)


# --- What an update overwrites and what it keeps --------------------------------------------


@pytest.mark.parametrize("run", ENTRY_POINTS)
def test_an_update_overwrites_catalogue_data_and_keeps_what_admins_and_workers_own(db, run):
    assert run(_jsonl(gh("pallets/flask"), gh("psf/requests"))) == (2, 0)
    cloned_at = timezone.now()
    Repository.objects.filter(full_name="pallets/flask").update(
        is_enabled=False, max_open_tasks=3, task_count=7, clone_status="READY",
        clone_error="old", cloned_at=cloned_at,
    )  # fmt: skip
    before = Repository.objects.get(full_name="pallets/flask")

    changed = gh("pallets/flask", stargazers_count=5, description="New words", topics=["cli"])
    assert run(_jsonl(changed, gh("new/one"))) == (1, 1)

    flask = Repository.objects.get(full_name="pallets/flask")
    assert (flask.stars, flask.description, flask.topics) == (5, "New words", ["cli"])
    assert flask.search_text == "pallets/flask new words cli" and flask.topics_text == " cli "
    kept = ("is_enabled", "max_open_tasks", "task_count", "clone_status", "clone_error")
    assert [getattr(flask, f) for f in kept] == [False, 3, 7, "READY", "old"]
    assert (flask.cloned_at, flask.created_at, flask.pk) == (
        cloned_at,
        before.created_at,
        before.pk,
    )
    assert flask.updated_at > before.updated_at
    new = Repository.objects.get(full_name="new/one")
    assert (new.is_enabled, new.task_count, new.clone_status, new.max_open_tasks) == (
        True,
        0,
        "NOT_CLONED",
        None,
    )


def test_an_unchanged_row_counts_as_updated_but_is_not_rewritten(db):
    content = _jsonl(gh("pallets/flask"), gh("psf/requests"))
    repository_import(content=content, filename="r.jsonl")
    stamps = dict(Repository.objects.values_list("full_name", "updated_at"))
    report = repository_import(
        content=_jsonl(gh("pallets/flask"), gh("psf/requests", stargazers_count=1)),
        filename="r.jsonl",
    )
    assert (report.created, report.updated) == (0, 2)
    after = dict(Repository.objects.values_list("full_name", "updated_at"))
    # The clone reaper reads updated_at: a no-op re-import must not make a stuck clone fresh.
    assert after["pallets/flask"] == stamps["pallets/flask"]
    assert after["psf/requests"] > stamps["psf/requests"]


@pytest.mark.parametrize("path", PATHS)
def test_both_write_paths_keep_admin_fields_and_count_the_same(db, path):
    assert _upsert(path, [row("a/one"), row("a/two")]) == (2, 0)
    Repository.objects.filter(full_name="a/one").update(is_enabled=False, task_count=4)
    assert _upsert(path, [row("a/one", stargazers_count=9), row("a/three")]) == (1, 1)
    one = Repository.objects.get(full_name="a/one")
    assert (one.stars, one.is_enabled, one.task_count) == (9, False, 4)


# --- A name repeated in one input ---------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_a_name_repeated_in_one_input_is_written_once_from_its_last_row(db, path):
    rows = [row("a/b", stargazers_count=1), row("c/d"), row("a/b", stargazers_count=3)]
    # One upsert cannot touch a row twice: without picking one row per name PostgreSQL
    # refuses the whole statement ("cannot affect row a second time").
    assert _upsert(path, iter(rows)) == (2, 0)
    assert Repository.objects.get(full_name="a/b").stars == 3


@pytest.mark.parametrize("run", ENTRY_POINTS)
def test_a_name_repeated_in_one_file_is_written_once_from_its_last_row(db, run):
    content = _jsonl(gh("a/b", stargazers_count=1), gh("c/d"), gh("a/b", stargazers_count=3))
    assert run(content) == (2, 0)
    assert Repository.objects.get(full_name="a/b").stars == 3


# --- Text that would break COPY ------------------------------------------------------------


@pytest.mark.parametrize("run", ENTRY_POINTS)
def test_hostile_text_is_stored_byte_for_byte(db, run):
    obj = gh(
        "evil/text",
        description=f"x {HOSTILE} x",
        language="Lang\\\tTab",
        license="MIT\\.\nX",
        default_branch="feature/\\N",
    )
    assert run(_jsonl(obj, gh("plain/row"))) == (2, 0)
    stored = Repository.objects.get(full_name="evil/text")
    assert stored.description == f"x {HOSTILE} x"
    assert (stored.language, stored.license, stored.default_branch) == (
        "Lang\\\tTab",
        "MIT\\.\nX",
        "feature/\\N",
    )
    assert stored.search_text == Repository.search_text_for(
        "evil/text", f"x {HOSTILE} x", ["web", "wsgi"]
    )
    # The row after it was not swallowed by an escape gone wrong.
    assert Repository.objects.get(full_name="plain/row").description == "Web framework"


def test_a_nul_character_is_a_rejected_row_not_a_failed_import(db):
    content = _jsonl(
        gh("nul/description", description="a\x00b"), gh("nul/license", license="MIT\x00"),
        gh("good/row"),
    )  # fmt: skip
    report = repository_import(content=content, filename="r.jsonl")
    assert report.rejected == [
        (1, "description contains a NUL character"),
        (2, "license must be an SPDX id"),
    ]
    assert list(Repository.objects.values_list("full_name", flat=True)) == ["good/row"]


def test_a_lone_surrogate_is_a_rejected_row(db):
    # PostgreSQL cannot store one; json let it through to fail the whole batch later.
    content = b'{"full_name": "a/b", "description": "\\ud800"}\n' + _jsonl(gh("good/row"))
    report = repository_import(content=content, filename="r.jsonl")
    assert [line for line, _ in report.rejected] == [1]
    assert "not valid JSON" in report.rejected[0][1]
    assert Repository.objects.filter(full_name="good/row").exists()


def test_a_time_without_an_offset_is_stored_as_the_orm_would(db, settings):
    settings.TIME_ZONE = "Europe/Paris"
    repository_import(
        content=_jsonl(gh("a/b", pushed_at="2026-07-01T12:00:00")), filename="r.jsonl"
    )
    # 12:00 in Paris (summer time), not 12:00 in the database session's zone (UTC).
    assert Repository.objects.get().pushed_at == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


# --- Failures leave nothing ----------------------------------------------------------------


def test_a_file_unreadable_midway_stores_nothing_of_an_in_memory_import(db):
    items = ",".join(json.dumps(gh(f"o/r-{i}")) for i in range(1500))
    with pytest.raises(ApplicationError, match=r"not valid JSON \(item 1501"):
        repository_import(content=f"[{items}, {{broken".encode(), filename="r.json")
    assert not Repository.objects.exists()


def test_an_error_while_rows_stream_in_is_raised_as_itself_and_stores_nothing(db):
    def rows():
        yield row("a/b")
        yield row("c/d")
        raise importing.RowError("the file broke at line 3")

    with pytest.raises(importing.RowError, match="the file broke at line 3"):
        catalogue_copy.repository_upsert_rows(rows=rows())
    assert not Repository.objects.exists()
    # No staging table was left behind: the next import in this connection works.
    assert catalogue_copy.repository_upsert_rows(rows=[row("e/f")]) == (1, 0)


def test_a_database_error_stores_nothing_and_leaves_no_staging_table(db):
    too_long = importing.RepositoryRow(**{**row("a/b").__dict__, "full_name": "o/" + "x" * 200})
    with pytest.raises(Exception, match="value too long"):
        catalogue_copy.repository_upsert_rows(rows=[row("c/d"), too_long])
    assert not Repository.objects.exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('pg_temp.repos_catalogue_stage')")
        assert cursor.fetchone() == (None,)


# --- The rows are found -------------------------------------------------------------------


def test_search_finds_rows_imported_by_the_job(client, contractor):
    _import_as_job(
        _jsonl(
            gh("acme/anvil", description="Zylophonic hammers\tand\nanvils", topics=["metal"]),
            gh("acme/other", description="Nothing to see", topics=["misc"]),
        )
    )
    client.force_login(contractor)
    for query in ("zylophonic", "ANVILS", "acme/anv"):
        page = client.get(reverse("repos:list"), {"q": query}).content.decode()
        assert "acme/anvil" in page and "acme/other" not in page, query
    page = client.get(reverse("repos:list"), {"topic": "metal"}).content.decode()
    assert "acme/anvil" in page and "acme/other" not in page


# --- Reading ahead -------------------------------------------------------------------------


def test_read_ahead_gives_every_item_then_the_error_where_it_happened():
    def items():
        yield from range(600)
        raise importing.RowError("broken at 601")

    seen = []
    with pytest.raises(importing.RowError, match="broken at 601"):
        for item in importing.read_ahead(items(), chunk=250, depth=2):
            seen.append(item)
    assert seen == list(range(600))


def test_leaving_a_read_ahead_early_stops_its_thread():
    def endless():
        n = 0
        while True:
            yield n
            n += 1

    before = threading.active_count()
    ahead = importing.read_ahead(endless(), chunk=10, depth=2)
    assert [next(ahead) for _ in range(25)] == list(range(25))
    ahead.close()
    assert threading.active_count() == before


def test_with_a_gate_the_reader_reads_past_half_its_queue_only_while_the_writer_waits():
    """The job opens the gate while its upsert runs in the database: the next rows are read
    then, not while the job itself runs Python (the two would share one core)."""
    pulled = 0

    def counted():
        nonlocal pulled
        for n in range(1000):
            pulled += 1
            yield n

    writing = threading.Event()
    ahead = importing.read_ahead(counted(), chunk=10, depth=4, gate=writing)
    assert next(ahead) == 0
    time.sleep(0.3)  # room to read on, which it must not take
    # The chunk being handed out, and half the queue (2 chunks) ahead of it.
    assert pulled == 30
    writing.set()
    deadline = time.monotonic() + 10
    while pulled < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pulled >= 50  # the whole queue (4 chunks) ahead
    assert list(ahead) == list(range(1, 1000))
