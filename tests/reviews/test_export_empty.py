"""An export that matches nothing says so: the command exits with status 1, names what was
left out and leaves no file; a job page and the API say "0 records match these filters"."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from reviews.export_filters import ExportFilters
from reviews.export_job_services import export_job_execute, export_job_start
from reviews.models import ExportJob
from tests.reviews.test_export_summary import (
    TIE,
    accepted_task,
    api_for,
    client_for,
    use_own_export_folder,
)

ROOT = Path(__file__).resolve().parents[2]
NOTHING = "0 records match these filters (no judged turns)."


@pytest.fixture
def export_storage(tmp_path, monkeypatch):
    return use_own_export_folder(tmp_path, monkeypatch)


@pytest.fixture
def only_a_tie(ready_repository, project, contractor, reviewer):
    return accepted_task(
        contractor=contractor, reviewer=reviewer, project=project, repository=ready_repository,
        prompt="Make div safe (tie).", verdict=TIE,
    )  # fmt: skip


# --- the command -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["native", "trl", "csv"])
def test_the_command_fails_with_a_message_and_writes_no_file_when_nothing_matches(
    db, tmp_path, fmt
):
    out = tmp_path / "out.jsonl"
    with pytest.raises(CommandError, match=r"^0 records match these filters \(no judged turns\)"):
        call_command("export_dataset", "--format", fmt, "-o", str(out), stderr=io.StringIO())
    assert list(tmp_path.iterdir()) == []  # neither the file nor its .partial


def test_an_export_of_nothing_keeps_an_older_file(db, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("the previous export\n")
    with pytest.raises(CommandError, match="0 records match"):
        call_command("export_dataset", "-o", str(out), stderr=io.StringIO())
    assert out.read_text() == "the previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_the_command_fails_on_standard_output_too(db, capsysbinary):
    with pytest.raises(CommandError, match="0 records match"):
        call_command("export_dataset", stderr=io.StringIO())
    assert capsysbinary.readouterr().out == b""


def test_the_command_names_what_it_left_out_when_nothing_is_left(only_a_tie, tmp_path):
    out = tmp_path / "trl.jsonl"
    with pytest.raises(CommandError) as raised:
        call_command("export_dataset", "--format", "trl", "-o", str(out), stderr=io.StringIO())
    assert str(raised.value) == ("0 records match these filters (1 judged turn; left out: 1 tie).")
    assert not out.exists()
    # The native format keeps ties: the same filters export the one turn.
    err = io.StringIO()
    call_command("export_dataset", "-o", str(out), stderr=err)
    assert len(out.read_text().splitlines()) == 1
    assert "Exported 1 line (native) from 1 judgement; left out: none;" in err.getvalue()


def test_the_command_line_exits_with_status_1(db, tmp_path):
    """As a shell or a script sees it: a message on standard error and exit status 1."""
    out = tmp_path / "out.jsonl"
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="marlin.settings.test",
        MARLIN_TEST_DATABASE_NAME=str(connection.settings_dict["NAME"]),
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "export_dataset", "--kind", "docs", "-o", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"CommandError: {NOTHING}" in done.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


# --- export jobs -------------------------------------------------------------------------


def test_a_job_of_nothing_says_so_on_its_page_and_in_the_api(db, admin_user, export_storage):
    job = export_job_execute(
        export_job_start(by=admin_user, fmt="native", filters=ExportFilters()).pk
    )
    assert job.status == ExportJob.Status.SUCCEEDED and job.records == 0

    ada = client_for(admin_user)
    url = reverse("reviews:export_job", args=[job.pk])
    for response in (ada.get(url), ada.get(url, HTTP_HX_REQUEST="true")):
        assert response.status_code == 200
        html = response.content.decode()
        assert NOTHING.removesuffix(".") in html
        assert 'id="export-download"' not in html  # nothing worth downloading

    body = api_for(admin_user).get(reverse("api-export", args=[job.pk])).json()
    assert body["status"] == "SUCCEEDED" and body["records"] == 0
    assert body["message"] == NOTHING.removesuffix(".")


def test_a_job_of_ties_alone_says_what_it_left_out(only_a_tie, admin_user, export_storage):
    job = export_job_execute(
        export_job_start(by=admin_user, fmt="openai", filters=ExportFilters()).pk
    )
    assert (job.records, job.total, job.left_out) == (0, 1, {"ties": 1})
    said = "0 records match these filters (1 judged turn; left out: 1 tie)"
    html = client_for(admin_user).get(reverse("reviews:export_job", args=[job.pk])).content
    assert said in html.decode()
    body = api_for(admin_user).get(reverse("api-export", args=[job.pk])).json()
    assert (body["records"], body["left_out"], body["message"]) == (0, {"ties": 1}, said)
