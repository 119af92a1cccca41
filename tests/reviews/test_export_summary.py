"""What an export left out and why (ties, weak preferences, ...), summed over its blocks and
said in the same words by the command, the export job page and the API; and the prompt style
of the pairwise formats, from the command, the page and the API to the file."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json

import pytest
from django.core.files.storage import FileSystemStorage
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from marlin.exceptions import ApplicationError
from reviews import exports
from reviews.export_filters import ExportFilters
from reviews.export_job_services import (
    ExportSummary,
    export_job_execute,
    export_job_start,
    left_out_text,
    records_text,
    write_export,
)
from reviews.models import ExportJob
from tasks import services
from tasks.models import Task
from tests.api_clients import api_client_for
from tests.tasks.helpers import create_task, decide, generate_all, valid_scores

JUSTIFICATION = "A careful justification of this judgement."
A_WINS, TIE, B_WINS = (-2, (4, 2)), (0, (3, 3)), (2, (2, 4))


def accepted_task(*, contractor, reviewer, project, repository, prompt: str, verdict) -> Task:
    """A one-turn task judged `verdict` (preference, (score of A, score of B)) and accepted."""
    task = generate_all(
        create_task(contractor=contractor, project=project, repository=repository, prompt=prompt)
    )
    assert task.status == Task.Status.AWAITING_PREFERENCE, task.status
    preference, (a, b) = verdict
    task = services.task_submit(
        task=task, by=contractor, preference=preference, scores=valid_scores(project, a, b),
        justification=JUSTIFICATION, confirm_warnings=True,
    )  # fmt: skip
    decide(task, reviewer=reviewer)
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED
    return task


@pytest.fixture
def three_turns(ready_repository, project, contractor, reviewer):
    """Three accepted one-turn tasks, in this order: A preferred, a tie, B preferred."""
    return [
        accepted_task(
            contractor=contractor,
            reviewer=reviewer,
            project=project,
            repository=ready_repository,
            prompt=f"Make div safe ({name}).",
            verdict=verdict,
        )  # fmt: skip
        for name, verdict in (("a wins", A_WINS), ("tie", TIE), ("b wins", B_WINS))
    ]


def use_own_export_folder(tmp_path, monkeypatch):
    """Export files of this test go to its own folder."""
    folder = tmp_path / "exports"
    folder.mkdir()
    monkeypatch.setattr(
        ExportJob._meta.get_field("file"), "storage", FileSystemStorage(location=folder)
    )
    return folder


@pytest.fixture
def export_storage(tmp_path, monkeypatch):
    return use_own_export_folder(tmp_path, monkeypatch)


def one_task_per_block(monkeypatch) -> list[int]:
    """Make every export read (and so encode) one task per chunk; returns the chunk sizes."""
    real = exports._chunks
    seen: list[int] = []

    def chunks(filters, chunk_size):
        for rows in real(filters, 1):
            seen.append(len(rows.tasks))
            yield rows

    monkeypatch.setattr(exports, "_chunks", chunks)
    return seen


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_for(user) -> APIClient:
    return api_client_for(user)


# --- the words ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left_out", "words"),
    [
        ({}, "left out: none"),
        ({"ties": 0}, "left out: none"),
        ({"ties": 1}, "left out: 1 tie"),
        ({"ties": 3}, "left out: 3 ties"),
        (
            {"identical candidates": 1, "ties": 3},
            "left out: 3 ties, 1 with identical candidates",
        ),
        (
            {"ties": 2, "below the minimum strength": 2},
            "left out: 2 below the minimum strength, 2 ties",
        ),
        (
            {"candidates sent different prompts": 1},
            "left out: 1 whose candidates were sent different prompts",
        ),
        ({"equal on this axis": 4}, "left out: 4 equal on this axis"),
        ({"a reason added later": 2}, "left out: 2 a reason added later"),
    ],
)
def test_left_out_counts_are_said_in_words(left_out, words):
    assert left_out_text(left_out) == words


@pytest.mark.parametrize(
    ("records", "considered", "left_out", "words"),
    [
        (8, 11, {"ties": 3}, "8 records from 11 judged turns; left out: 3 ties"),
        (1, 1, {}, "1 record from 1 judged turn; left out: none"),
        (0, 3, {"ties": 3}, "0 records match these filters (3 judged turns; left out: 3 ties)"),
        (0, 0, {}, "0 records match these filters (no judged turns)"),
    ],
)
def test_the_record_count_is_said_with_what_was_left_out(records, considered, left_out, words):
    assert records_text(records=records, considered=considered, left_out=left_out) == words


# --- write_export ------------------------------------------------------------------------


def test_write_export_sums_what_every_block_left_out(three_turns, monkeypatch):
    chunks = one_task_per_block(monkeypatch)
    out = io.BytesIO()
    summary = write_export(out, fmt="trl", filters=ExportFilters())
    assert chunks == [1, 1, 1]  # three blocks; the tie is in the middle one
    data = out.getvalue()
    assert summary == ExportSummary(
        records=2,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        considered=3,
        left_out={"ties": 1},
    )
    assert len(data.splitlines()) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.records = 3  # type: ignore[misc]


def test_write_export_counts_weak_preferences_and_keeps_ties_in_native(three_turns, monkeypatch):
    one_task_per_block(monkeypatch)
    native = write_export(io.BytesIO(), fmt="native", filters=ExportFilters())
    assert (native.records, native.considered, native.left_out) == (3, 3, {})
    strong = write_export(io.BytesIO(), fmt="native", filters=ExportFilters(min_strength=1))
    assert (strong.records, strong.left_out) == (2, {"below the minimum strength": 1})


# --- the command -------------------------------------------------------------------------


def test_the_command_summary_says_what_was_left_out(three_turns, tmp_path):
    out, err = tmp_path / "trl.jsonl", io.StringIO()
    call_command("export_dataset", "--format", "trl", "-o", str(out), stderr=err)
    data = out.read_bytes()
    assert len(data.splitlines()) == 2
    assert err.getvalue().strip() == (
        "Exported 2 lines (trl) from 3 judgements; left out: 1 tie; "
        f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}."
    )

    err = io.StringIO()
    call_command("export_dataset", "-o", str(tmp_path / "native.jsonl"), stderr=err)
    assert "Exported 3 lines (native) from 3 judgements; left out: none; " in err.getvalue()


# --- export jobs: the job, its page and the API -----------------------------------------


def test_a_job_keeps_what_it_left_out_and_its_page_and_the_api_say_it(
    three_turns, admin_user, export_storage
):
    job = export_job_execute(export_job_start(by=admin_user, fmt="trl", filters=ExportFilters()).pk)
    assert job.status == ExportJob.Status.SUCCEEDED, job.error
    assert (job.records, job.total, job.left_out) == (2, 3, {"ties": 1})
    said = "2 records from 3 judged turns; left out: 1 tie"

    ada = client_for(admin_user)
    url = reverse("reviews:export_job", args=[job.pk])
    for response in (ada.get(url), ada.get(url, HTTP_HX_REQUEST="true")):
        assert response.status_code == 200
        html = response.content.decode()
        assert said in html
        assert "0 records match" not in html
        assert 'id="export-download"' in html

    body = api_for(admin_user).get(reverse("api-export", args=[job.pk])).json()
    assert body["records"] == 2 and body["left_out"] == {"ties": 1}
    assert body["message"] == said


def test_a_job_not_yet_run_has_no_message(db, admin_user, export_storage, contractor):
    job = export_job_start(by=admin_user, fmt="trl", filters=ExportFilters())
    api = api_for(admin_user)
    body = api.get(reverse("api-export", args=[job.pk])).json()
    assert body["status"] == "QUEUED" and body["message"] == "" and body["left_out"] == {}
    html = client_for(admin_user).get(reverse("reviews:export_job", args=[job.pk])).content
    assert b"records match" not in html and b"left out" not in html
    assert api_for(contractor).get(reverse("api-export", args=[job.pk])).status_code == 403


# --- the prompt style --------------------------------------------------------------------


def _prompt_roles(lines: list[bytes]) -> list[list[str]]:
    return [[m["role"] for m in json.loads(line)["prompt"]] for line in lines]


def test_the_command_takes_the_prompt_style(three_turns, tmp_path):
    bare, model = tmp_path / "bare.jsonl", tmp_path / "model.jsonl"
    call_command(
        "export_dataset", "--format", "trl", "--prompt-style", "bare", "-o", str(bare),
        stderr=io.StringIO(),
    )  # fmt: skip
    call_command("export_dataset", "--format", "trl", "-o", str(model), stderr=io.StringIO())
    bare_lines, model_lines = bare.read_bytes().splitlines(), model.read_bytes().splitlines()
    assert _prompt_roles(bare_lines) == [["user"], ["user"]]
    assert json.loads(bare_lines[0])["prompt"][0]["content"].endswith("Make div safe (a wins).")
    # The default is what the model was sent: a system message first.
    assert [roles[0] for roles in _prompt_roles(model_lines)] == ["system", "system"]


def test_the_command_refuses_an_unknown_prompt_style(three_turns, tmp_path):
    with pytest.raises(CommandError, match="prompt_style: Select a valid choice. other is not"):
        call_command(
            "export_dataset", "--prompt-style", "other", "-o", str(tmp_path / "out.jsonl"),
            stderr=io.StringIO(),
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_the_api_stores_the_prompt_style_on_the_job_and_the_job_uses_it(
    three_turns, admin_user, export_storage
):
    api = api_for(admin_user)
    response = api.post(reverse("api-exports"), {"format": "trl", "prompt_style": "bare"}, "json")
    assert response.status_code == 202, response.content
    assert response.json()["prompt_style"] == "bare"
    job = ExportJob.objects.get(pk=response.json()["id"])
    assert job.prompt_style == "bare"
    job = export_job_execute(job.pk)
    with job.file.open("rb") as handle:
        assert _prompt_roles(handle.read().splitlines()) == [["user"], ["user"]]

    default = api.post(reverse("api-exports"), {"format": "trl"}, "json")
    assert default.status_code == 202 and default.json()["prompt_style"] == "model"
    with export_job_execute(default.json()["id"]).file.open("rb") as handle:
        assert [r[0] for r in _prompt_roles(handle.read().splitlines())] == ["system", "system"]


def test_the_api_refuses_an_unknown_prompt_style(db, admin_user):
    response = api_for(admin_user).post(
        reverse("api-exports"), {"format": "trl", "prompt_style": "other"}, "json"
    )
    assert response.status_code == 400
    assert "other is not one of the available choices" in response.json()["prompt_style"][0]
    assert not ExportJob.objects.exists()
    with pytest.raises(ApplicationError, match="Unknown prompt style 'other'"):
        export_job_start(by=admin_user, fmt="trl", filters=ExportFilters(), prompt_style="other")
    assert not ExportJob.objects.exists()


def test_the_export_page_offers_the_prompt_style_and_stores_it(
    db, admin_user, export_storage, contractor
):
    ada = client_for(admin_user)
    form = ada.get(reverse("reviews:export")).content.decode()
    assert "Prompt in pairwise formats" in form
    assert "What the model was sent (system message, repository context, conversation)" in form
    assert "The contractor&#x27;s prompts only" in form
    response = ada.post(reverse("reviews:export"), {"format": "trl", "prompt_style": "bare"})
    assert response.status_code == 302
    job = ExportJob.objects.get()
    assert job.prompt_style == "bare"
    page = ada.get(reverse("reviews:export_job", args=[job.pk])).content.decode()
    assert "Prompt in pairwise formats: The contractor&#x27;s prompts only" in page

    refused = ada.post(reverse("reviews:export"), {"format": "trl", "prompt_style": "other"})
    assert refused.status_code == 400 and ExportJob.objects.count() == 1
    outsider = client_for(contractor)
    assert outsider.post(reverse("reviews:export"), {"format": "trl"}).status_code == 403
    assert ExportJob.objects.count() == 1
