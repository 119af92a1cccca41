"""Every flow of the browser, through the REST API, by token: contractor, reviewer, admin."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from reviews.export_job_services import export_job_execute
from reviews.models import ExportJob
from tasks.models import Task
from tests.api_clients import api_client_for
from tests.tasks.helpers import generate_all, valid_scores


def _client(user) -> APIClient:
    return api_client_for(user)


@pytest.fixture
def api_task(ready_repository, project, contractor):
    client = _client(contractor)
    response = client.post(
        reverse("api-tasks"),
        {
            "project": project.pk,
            "repository": ready_repository.pk,
            "ref": "",
            "title": "Guard division",
            "kind": "bug_fix",
            "prompt": "calc.ops.div raises on zero; return None instead.",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    task = generate_all(Task.objects.get(pk=response.json()["id"]))
    return client, task


def test_a_task_goes_from_creation_to_export_through_the_api(
    api_task, project, reviewer, admin_user
):
    client, task = api_task
    detail = client.get(reverse("api-task", args=[task.pk])).json()
    assert detail["status"] == "AWAITING_PREFERENCE"
    [turn] = detail["turns"]
    assert sorted(c["slot"] for c in turn["candidates"]) == ["A", "B"]
    assert all(c["status"] == "SUCCEEDED" and c["diff"] for c in turn["candidates"])

    # A follow-up turn, then the submission.
    judgement = {
        "preference": -2,
        "scores": valid_scores(project),
        "justification": "A guards the zero case; B does not.",
    }
    response = client.post(
        reverse("api-task-follow-up", args=[task.pk]),
        {**judgement, "prompt": "Also add a test."},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["number"] == 2
    generate_all(task)
    response = client.post(reverse("api-task-submit", args=[task.pk]), judgement, format="json")
    assert response.status_code == 200 and response.json()["status"] == "SUBMITTED"

    # The reviewer finds it in the queue, claims, sees it, accepts.
    rita = _client(reviewer)
    queue = rita.get(reverse("api-review-queue")).json()
    assert [t["id"] for t in queue["results"]] == [task.pk]
    assert rita.post(reverse("api-review-claim", args=[task.pk])).status_code == 201
    seen = rita.get(reverse("api-review-task", args=[task.pk])).json()
    assert [len(t["judgements"]) for t in seen["turns"]] == [1, 1]
    assert seen["claim"]["task"] == task.pk
    response = rita.post(
        reverse("api-review-decide", args=[task.pk]), {"decision": "ACCEPT"}, format="json"
    )
    assert response.status_code == 201 and response.json()["task_status"] == "ACCEPTED"
    assert client.get(reverse("api-earnings")).json()["accepted"] == "280.00"

    # The admin exports it as TRL and downloads the file.
    ada = _client(admin_user)
    response = ada.post(
        reverse("api-exports"),
        {"format": "trl", "project": project.pk, "kinds": ["bug_fix"]},
        format="json",
    )
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    export_job_execute(job_id)  # what the worker runs once the request commits
    job = ada.get(reverse("api-export", args=[job_id])).json()
    assert job["status"] == "SUCCEEDED" and job["total"] == 2 and job["records"] == 2
    download = ada.get(job["download_url"])
    assert download.status_code == 200
    records = [json.loads(line) for line in b"".join(download.streaming_content).splitlines()]
    # The prompt is what the models were sent: the system message, then the conversation.
    assert [[m["role"] for m in r["prompt"]] for r in records] == [
        ["system", "user"],
        ["system", "user", "assistant", "user"],
    ]


def test_a_contradicting_judgement_is_refused_with_its_warnings_until_confirmed(api_task, project):
    client, task = api_task
    judgement = {
        "preference": -2,  # prefers A...
        "scores": valid_scores(project, a=1, b=5),  # ...but scored B higher everywhere
        "justification": "A guards the zero case; B does not.",
    }
    url = reverse("api-task-submit", args=[task.pk])
    response = client.post(url, judgement, format="json")
    assert response.status_code == 400
    assert response.json()["warnings"] == ["You prefer A, but B's scores add up higher (20 vs 4)."]
    task.refresh_from_db()
    assert task.status == Task.Status.AWAITING_PREFERENCE
    response = client.post(url, {**judgement, "confirm_warnings": True}, format="json")
    assert response.status_code == 200
    task.refresh_from_db()
    assert task.status == Task.Status.SUBMITTED


def test_the_catalogue_and_a_file_at_the_pinned_commit(client, ready_repository, contractor):
    api = _client(contractor)
    listing = api.get(reverse("api-repositories"), {"sort": "name"}).json()
    assert [r["id"] for r in listing["results"]] == [ready_repository.pk]
    assert listing["results"][0]["clone_status"] == "READY"
    assert api.get(reverse("api-repositories"), {"min_stars": -1}).status_code == 400
    root = api.get(reverse("api-repository-tree", args=[ready_repository.pk])).json()
    assert len(root["commit_sha"]) == 40
    assert {e["name"] for e in root["entries"]} >= {"calc", "tests"}
    file = api.get(
        reverse("api-repository-tree", args=[ready_repository.pk]), {"path": "calc/ops.py"}
    ).json()
    assert file["content"].startswith("def add(a, b):")
    missing = api.get(
        reverse("api-repository-tree", args=[ready_repository.pk]), {"path": "nope.py"}
    )
    assert missing.status_code == 404


def test_bad_export_requests_get_field_messages_and_start_nothing(admin_user):
    ada = _client(admin_user)
    response = ada.post(
        reverse("api-exports"),
        {"format": "parquet", "repositories": "nobody/nothing", "min_strength": 2},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert "Unknown format" in body["format"][0]
    assert "Unknown repository" in body["repositories"][0]
    assert not ExportJob.objects.exists()


@pytest.mark.parametrize("name", ["api-docs", "api-redoc"])
def test_the_api_docs_are_served_from_our_own_static_files(client, contractor, name):
    client.force_login(contractor)  # the docs, like the schema, are for signed-in users
    page = client.get(reverse(name)).content.decode()
    assert "/static/drf_spectacular_sidecar/" in page
    assert "cdn." not in page and "unpkg" not in page and "jsdelivr" not in page


def test_the_schema_is_served_and_names_every_flow(client, contractor):
    client.force_login(contractor)
    schema = client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    paths = json.loads(schema.content)["paths"]
    for path in (
        "/api/tasks/",
        "/api/tasks/{id}/submit/",
        "/api/tasks/{id}/follow-up/",
        "/api/candidates/{id}/retry/",
        "/api/reviews/tasks/{id}/decide/",
        "/api/exports/",
        "/api/repositories/",
        "/api/earnings/",
    ):
        assert path in paths, path
