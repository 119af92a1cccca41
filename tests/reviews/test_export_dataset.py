from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from reviews.services import review_decide
from tests.tasks.helpers import create_task, generate_all, submit


@pytest.fixture
def accepted_task(ready_repository, project, contractor, reviewer):
    task = submit(
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
    )
    review_decide(task=task, reviewer=reviewer, decision="ACCEPT", feedback="")
    return task


def test_the_command_exports_accepted_judgements_only(
    accepted_task, ready_repository, project, contractor, tmp_path
):
    # A second task that is only submitted must not be exported by default.
    submit(
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
    )
    out = tmp_path / "out.jsonl"
    call_command("export_dataset", "--project", project.name, "-o", str(out))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["task_id"] for r in records] == [accepted_task.pk]
    record = records[0]
    assert record["repository"] == ready_repository.full_name
    assert record["prompt"] == "Make div safe."
    assert record["conversation"] == [{"role": "user", "content": "Make div safe."}]
    assert record["scores"]["B"]["maintainability"] == 2
    assert record["justification"] == "A handles the zero case; B crashes."
    assert record["contractor_id"] == contractor.pk
    assert record["candidates"]["A"]["diff"].startswith("--- a/")

    call_command("export_dataset", "--include-unaccepted", "-o", str(out))
    assert len(out.read_text().splitlines()) == 2


def test_an_unknown_project_is_a_clear_error_and_writes_no_file(db, tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(CommandError, match="No project named 'nope'"):
        call_command("export_dataset", "--project", "nope", "-o", str(out))
    assert not out.exists()


def test_the_export_page_streams_the_same_records(client, accepted_task, admin_user, project):
    client.force_login(admin_user)
    response = client.get(reverse("reviews:export"), {"project": project.pk, "format": "native"})
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert [json.loads(line)["task_id"] for line in lines] == [accepted_task.pk]
