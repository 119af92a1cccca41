"""Catalogue imports as background jobs: upload (API, admin, command), a real worker, progress,
all-bad files refused, size limits, resuming after a crash, and memory flat in the file's size."""

from __future__ import annotations

import io
import json
import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from marlin.exceptions import InvalidTransition
from repos import catalogue_imports, importing, jobs
from repos.catalogue_imports import (
    catalogue_import_execute,
    catalogue_import_reap_stale,
    catalogue_import_resume,
    catalogue_import_start,
)
from repos.models import CATALOGUE_IMPORT_TRANSITIONS, CatalogueImport, Repository
from tests.conftest import wait_for
from tests.repos.test_repository_import import gh

S = CatalogueImport.Status


def jsonl(count: int, *, bad_every: int = 0, start: int = 0) -> bytes:
    """`count` rows of GitHub objects; every `bad_every`-th one has an invalid name."""
    lines = []
    for i in range(start, start + count):
        name = "bad name/x" if bad_every and i % bad_every == bad_every - 1 else f"o{i % 97}/r-{i}"
        lines.append(json.dumps(gh(name, description=f"Repository number {i}")))
    return ("\n".join(lines) + "\n").encode()


def stored_files() -> list[Path]:
    root = Path(CatalogueImport._meta.get_field("file").storage.location)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture
def no_stored_files():
    before = set(stored_files())
    yield
    leftover = set(stored_files()) - before
    for path in leftover:
        path.unlink()


# --- The transition table ------------------------------------------------------------------


ALLOWED = {
    ("QUEUED", "RUNNING"), ("QUEUED", "FAILED"),
    ("RUNNING", "SUCCEEDED"), ("RUNNING", "FAILED"), ("RUNNING", "QUEUED"),
    ("FAILED", "QUEUED"),
}  # fmt: skip


@pytest.mark.parametrize("old", S.values)
@pytest.mark.parametrize("new", S.values)
def test_only_the_listed_moves_are_allowed(db, old, new):
    job = CatalogueImport.objects.create(filename="r.jsonl", status=old)
    assert ((old, new) in ALLOWED) == (new in CATALOGUE_IMPORT_TRANSITIONS[old])
    moves = {
        "RUNNING": lambda: job.claim(job_id="j1"),
        "SUCCEEDED": job.succeed,
        "FAILED": lambda: job.fail(reason="r"),
        "QUEUED": lambda: job.requeue(from_start=False),
    }
    if (old, new) in ALLOWED:
        moves[new]()
        job.refresh_from_db()
        assert job.status == new
    else:
        with pytest.raises(InvalidTransition, match=f"from {old} to {new}"):
            moves[new]()
        job.refresh_from_db()
        assert job.status == old


# --- A real worker: API, admin ---------------------------------------------------------------


@pytest.mark.worker
def test_a_real_worker_imports_a_file_uploaded_through_the_api(
    celery_worker_process, admin_user, no_stored_files
):
    client = Client()
    client.force_login(admin_user)
    content = jsonl(2500, bad_every=500)  # 5 bad rows among 2,500, spread over 3 batches
    response = client.post(
        reverse("api-repos-import"), {"file": SimpleUploadedFile("big.jsonl", content)}
    )
    assert response.status_code == 202, response.content
    url = response.json()["url"]
    assert response.json()["status"] == "QUEUED"

    wait_for(
        lambda: client.get(url).json()["status"] in ("SUCCEEDED", "FAILED"),
        timeout=60,
        message="the import to finish",
    )
    data = client.get(url).json()
    assert data["status"] == "SUCCEEDED", data["error"]
    assert (data["rows_read"], data["rows_created"], data["rows_rejected"]) == (2500, 2495, 5)
    assert (data["bytes_read"], data["size_bytes"], data["percent"]) == (
        len(content),
        len(content),
        100,
    )
    assert data["rejections"][0] == {
        "line": 500,
        "reason": "full_name 'bad name/x' is not OWNER/NAME",
    }
    assert Repository.objects.count() == 2495
    # The stored upload is gone once imported.
    assert not CatalogueImport.objects.get().file


@pytest.mark.worker
def test_a_real_worker_imports_a_file_uploaded_in_the_admin(
    celery_worker_process, admin_user, no_stored_files
):
    client = Client()
    client.force_login(admin_user)
    content = jsonl(1200)
    response = client.post(
        reverse("admin:repos_repository_import"),
        {"file": SimpleUploadedFile("catalogue.jsonl", content)},
    )
    job = CatalogueImport.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:repos_catalogueimport_change", args=[job.pk])

    def finished() -> bool:
        job.refresh_from_db()
        return job.is_terminal

    wait_for(finished, timeout=60, message="the import to finish")
    assert (job.status, job.rows_created, job.rows_rejected) == (S.SUCCEEDED, 1200, 0)
    page = client.get(response.url).content.decode()
    assert "Imported</strong>: 100%" in page and "1200 imported (1200 new, 0 updated)" in page
    assert Repository.objects.count() == 1200


# --- The command ---------------------------------------------------------------------------


def test_the_command_runs_the_same_import_and_shows_progress(db, tmp_path, capsys, no_stored_files):
    path = tmp_path / "repos.jsonl"
    path.write_bytes(jsonl(2100, bad_every=700))
    call_command("import_repositories", str(path))
    out = capsys.readouterr()
    assert "Imported 2097 repositories (2097 new, 0 updated); rejected 3 rows." in out.out
    assert "100% of" in out.out and "2,100 rows read" in out.out  # progress lines
    assert "line 700: full_name 'bad name/x' is not OWNER/NAME" in out.err
    job = CatalogueImport.objects.get()
    assert (job.status, job.requested_by, job.rows_read) == (S.SUCCEEDED, None, 2100)
    # Running it again only updates: the upsert never duplicates a row.
    call_command("import_repositories", str(path))
    assert "(0 new, 2097 updated)" in capsys.readouterr().out
    assert Repository.objects.count() == 2097


def test_the_command_refuses_an_all_bad_file_and_stores_nothing(db, tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"full_name": "x"}) + "\n{broken\n")
    before = stored_files()
    with pytest.raises(CommandError, match="all 2 rows were rejected"):
        call_command("import_repositories", str(path))
    assert "line 2: not valid JSON" in capsys.readouterr().err
    assert not CatalogueImport.objects.exists() and stored_files() == before


# --- All-bad files and the size limit --------------------------------------------------------


def test_an_all_bad_upload_is_a_400_and_nothing_is_stored(client, admin_user):
    client.force_login(admin_user)
    before = stored_files()
    content = b'{"full_name": "no-slash"}\n{"full_name": "a/b", "clone_url": "ext::sh"}\n'
    response = client.post(
        reverse("api-repos-import"), {"file": SimpleUploadedFile("r.jsonl", content)}
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("No row of r.jsonl can be imported: all 2 rows")
    assert [r["line"] for r in response.json()["rejected"]] == [1, 2]
    assert not CatalogueImport.objects.exists() and not Repository.objects.exists()
    assert stored_files() == before


def test_a_large_file_whose_head_is_all_bad_is_refused_while_the_uploader_waits(db):
    # Larger than the part checked at upload: only its first rows are read.
    content = jsonl(4000, bad_every=1)
    assert len(content) > catalogue_imports.SAMPLE_BYTES
    with pytest.raises(catalogue_imports.ImportRejected, match=r"^The first \d+ rows of big"):
        catalogue_import_start(by=None, upload=ContentFile(content), filename="big.jsonl")
    assert not CatalogueImport.objects.exists()


def test_an_import_that_finds_no_good_row_ends_failed_with_the_reason(db, no_stored_files):
    # The head check refuses such a file at upload; a stored one (e.g. from before the
    # check) must still end FAILED, not SUCCEEDED with nothing imported.
    storage = CatalogueImport._meta.get_field("file").storage
    name = storage.save("old.jsonl", ContentFile(jsonl(30, bad_every=1)))
    job = CatalogueImport.objects.create(filename="old.jsonl", file=name, size_bytes=1)
    job = catalogue_import_execute(import_id=job.pk)
    assert job.status == S.FAILED
    assert job.error.startswith("No row of old.jsonl could be imported: all 30 rows were rejected")
    assert job.file  # kept, so the cause can be looked at


def test_a_file_broken_midway_fails_keeping_the_rows_before_it(db, no_stored_files):
    items = ",".join(json.dumps(gh(f"o/r-{i}")) for i in range(3000))
    upload = ContentFile(f"[{items}, {{broken".encode())
    assert upload.size > catalogue_imports.SAMPLE_BYTES  # so the break is past the head
    job = catalogue_import_start(by=None, upload=upload, filename="r.json", enqueue=False)
    job = catalogue_import_execute(import_id=job.pk)
    assert job.status == S.FAILED
    assert job.error == (
        "the file is not valid JSON (item 3001: Expecting property name enclosed in double "
        "quotes). The 3000 rows before it were imported."
    )
    assert Repository.objects.count() == 3000


def test_a_file_over_the_limit_is_a_413(client, admin_user, settings):
    settings.MARLIN_IMPORT_MAX_MB = 1
    client.force_login(admin_user)
    content = jsonl(5000)
    assert len(content) > 2**20
    response = client.post(
        reverse("api-repos-import"), {"file": SimpleUploadedFile("r.jsonl", content)}
    )
    assert response.status_code == 413
    assert "catalogue files may be at most 1 MiB" in response.json()["detail"]
    admin_page = client.post(
        reverse("admin:repos_repository_import"),
        {"file": SimpleUploadedFile("r.jsonl", content)},
    )
    assert admin_page.status_code == 400 and b"may be at most 1 MiB" in admin_page.content
    assert not CatalogueImport.objects.exists()


# --- Crashes, resuming, re-running -----------------------------------------------------------


class Crash(Exception):
    pass


def test_an_import_killed_midway_resumes_without_duplicating_rows(db, no_stored_files):
    content = jsonl(3500, bad_every=1000)
    job = catalogue_import_start(
        by=None, upload=ContentFile(content), filename="r.jsonl", enqueue=False
    )
    batches = []

    def crash_after_two_batches(progress: CatalogueImport) -> None:
        batches.append(progress.rows_read)
        if progress.rows_read >= 2000:
            raise Crash

    with pytest.raises(Crash):
        catalogue_import_execute(import_id=job.pk, on_progress=crash_after_two_batches)
    job.refresh_from_db()
    assert job.status == S.FAILED and "resume it to go on from there" in job.error
    assert (job.rows_read, job.rows_created, job.line) == (2002, 2000, 2002)
    assert Repository.objects.count() == 2000

    catalogue_import_resume(catalogue_import=job, enqueue=False)
    job = catalogue_import_execute(import_id=job.pk)
    assert job.status == S.SUCCEEDED
    assert (job.rows_read, job.rows_created, job.rows_updated, job.rows_rejected) == (
        3500,
        3497,
        0,
        3,
    )
    assert [line for line, _ in job.rejections] == [1000, 2000, 3000]
    assert Repository.objects.count() == 3497


def test_a_rerun_from_the_start_updates_the_same_rows(db, no_stored_files):
    job = catalogue_import_start(
        by=None, upload=ContentFile(jsonl(1500)), filename="r.jsonl", enqueue=False
    )
    with pytest.raises(Crash):
        catalogue_import_execute(import_id=job.pk, on_progress=_crash_at(1000))
    job.refresh_from_db()
    catalogue_import_resume(catalogue_import=job, from_start=True, enqueue=False)
    job.refresh_from_db()
    assert (job.bytes_read, job.rows_read, job.rows_created) == (0, 0, 0)
    job = catalogue_import_execute(import_id=job.pk)
    assert (job.rows_created, job.rows_updated) == (500, 1000)
    assert Repository.objects.count() == 1500


def _crash_at(rows: int):
    def hook(progress: CatalogueImport) -> None:
        if progress.rows_read >= rows:
            raise Crash

    return hook


def test_a_job_that_lost_its_claim_stops_and_rolls_its_batch_back(db, no_stored_files):
    job = catalogue_import_start(
        by=None, upload=ContentFile(jsonl(2500)), filename="r.jsonl", enqueue=False
    )

    def taken_over(progress: CatalogueImport) -> None:
        if progress.rows_read == 1000:
            # An admin resumes it while this job is alive (or the reaper thinks it dead).
            fresh = CatalogueImport.objects.get(pk=progress.pk)
            catalogue_import_resume(catalogue_import=fresh, enqueue=False)

    assert catalogue_import_execute(import_id=job.pk, on_progress=taken_over) is None
    job.refresh_from_db()
    # Its second batch was not committed: the row still says 1,000, now QUEUED.
    assert (job.status, job.rows_read) == (S.QUEUED, 1000)
    assert Repository.objects.count() == 1000
    job = catalogue_import_execute(import_id=job.pk)
    assert (job.status, job.rows_created, job.rows_updated) == (S.SUCCEEDED, 2500, 0)


def test_the_reaper_resumes_a_stalled_import_and_resends_a_lost_one(
    db, django_capture_on_commit_callbacks, monkeypatch, no_stored_files
):
    sent: list[int] = []
    monkeypatch.setattr(jobs.catalogue_import_run, "delay", sent.append)
    stalled = catalogue_import_start(
        by=None, upload=ContentFile(jsonl(10)), filename="a.jsonl", enqueue=False
    )
    stalled.claim(job_id="dead-worker")
    alive = catalogue_import_start(
        by=None, upload=ContentFile(jsonl(10)), filename="b.jsonl", enqueue=False
    )
    alive.claim(job_id="live-worker")
    lost = CatalogueImport.objects.create(filename="c.jsonl", file="x.jsonl")
    long_ago = timezone.now() - timedelta(seconds=600)
    CatalogueImport.objects.filter(pk__in=[stalled.pk, lost.pk]).update(updated_at=long_ago)
    with django_capture_on_commit_callbacks(execute=True):
        assert catalogue_import_reap_stale() == 2
    assert sorted(sent) == sorted([stalled.pk, lost.pk])
    stalled.refresh_from_db()
    alive.refresh_from_db()
    assert (stalled.status, stalled.job_id, alive.status) == (S.QUEUED, "", S.RUNNING)


# --- Memory ----------------------------------------------------------------------------------


def _write_catalogue(path: Path, megabytes: int) -> int:
    # Rows of 8 KiB (GitHub objects carry many fields the import ignores): few rows per MiB
    # keep the traced parse quick, and the bytes are what a reader holding the file grows with.
    row = json.dumps(gh("OWNER/NAME", description="A catalogue row.", notes="n" * 8000))
    with path.open("w") as out:
        i = 0
        while out.tell() < megabytes * 2**20:
            out.write(row.replace("OWNER/NAME", f"o{i % 101}/r-{i}") + "\n")
            i += 1
    return i


def _peak_parse_bytes(path: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        with path.open("rb") as stream:
            good = sum(
                1
                for parsed in importing.parse_stream(
                    stream, filename=path.name, allowed_bases=["https://github.com"]
                )
                if parsed.row
            )
        return tracemalloc.get_traced_memory()[1], good
    finally:
        tracemalloc.stop()


def test_parsing_memory_stays_flat_in_the_files_size(tmp_path):
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    small_rows = _write_catalogue(small, 5)
    large_rows = _write_catalogue(large, 25)
    peak_small, good_small = _peak_parse_bytes(small)
    peak_large, good_large = _peak_parse_bytes(large)
    assert (good_small, good_large) == (small_rows, large_rows)
    # Five times the file, about the same peak: one row at a time, never the whole file
    # (reading it whole would cost 30 MiB and more).
    assert peak_large < 1 * 2**20, peak_large
    assert peak_large < peak_small * 1.5 + 64 * 1024, (peak_small, peak_large)


def test_an_upload_is_checked_and_stored_without_being_read_whole(db, no_stored_files):
    content = jsonl(60_000)  # about 20 MiB, spooled to disk as Django does past 2.5 MB
    upload = TemporaryUploadedFile("big.jsonl", "application/octet-stream", len(content), None)
    upload.write(content)
    upload.seek(0)
    del content
    tracemalloc.start()
    try:
        job = catalogue_import_start(by=None, upload=upload, filename="big.jsonl", enqueue=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        upload.close()  # as Django does after a request: the temp file was moved into storage
    assert job.size_bytes > 19 * 2**20
    assert peak < 4 * 2**20, peak  # the head that is checked (1 MiB) and little else


def test_csv_and_json_array_files_resume_at_the_right_row():
    # A resumed import reads on from a row's `end` offset: the next row must follow.
    csv_bytes = b'full_name,description\na/b,"two\nlines"\nc/d,x\ne/f,y\n'
    array_bytes = ("[" + ", ".join(json.dumps(gh(f"o/r{i}")) for i in range(3)) + "]").encode()
    for content, name in ((csv_bytes, "r.csv"), (array_bytes, "r.json")):
        first = list(importing.records(io.BytesIO(content), filename=name))
        resumed = list(
            importing.records(
                io.BytesIO(content), filename=name, offset=first[0].end, line=first[0].line
            )
        )
        assert resumed == first[1:], name


def test_the_admin_resumes_a_failed_import_from_the_list(
    client, admin_user, contractor, django_capture_on_commit_callbacks, monkeypatch,
    no_stored_files,
):  # fmt: skip
    sent: list[int] = []
    monkeypatch.setattr(jobs.catalogue_import_run, "delay", sent.append)
    job = catalogue_import_start(
        by=None, upload=ContentFile(jsonl(10)), filename="r.jsonl", enqueue=False
    )
    job.fail(reason="The import stopped (OperationalError) after line 0; resume it.")
    url = reverse("admin:repos_catalogueimport_changelist")
    client.force_login(contractor)
    assert client.get(url).status_code == 302  # to the admin login: not theirs to see
    client.force_login(admin_user)
    assert "r.jsonl" in client.get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"action": "resume", "_selected_action": [job.pk]})
    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.status, job.error, sent) == (S.QUEUED, "", [job.pk])
