"""The whole thin slice through the web layer, with a real Celery worker process doing the jobs."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from repos.models import Repository
from reviews.models import Review
from tasks.models import Candidate, Judgement, Task, TaskEvent
from tests.conftest import wait_for
from tests.factories import pool_endpoints

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _judgement_post(project, preference: int, text: str) -> dict:
    data = {"preference": str(preference), "justification": text}
    for slot, base in (("A", 4), ("B", 2)):
        for key in project.axis_keys:
            data[f"score_{slot}_{key}"] = str(base)
    return data


def test_the_slice_runs_end_to_end_through_a_real_worker(
    celery_worker_process, served_repository, project, contractor, reviewer, admin_user, tmp_path
):
    carol, rita = _client_for(contractor), _client_for(reviewer)

    # The clone is a job: the worker clones over HTTP from the loopback git server.
    response = carol.post(reverse("repos:clone", args=[served_repository.pk]))
    assert response.status_code == 302
    wait_for(
        lambda: (
            Repository.objects.get(pk=served_repository.pk).clone_status
            in (Repository.CloneStatus.READY, Repository.CloneStatus.FAILED)
        ),
        message="the clone job",
    )
    served_repository.refresh_from_db()
    assert served_repository.is_ready, served_repository.clone_error

    response = carol.post(
        reverse("tasks:create"),
        {
            "project": project.pk,
            "repository": served_repository.pk,
            "ref": "",
            "title": "Guard division by zero",
            "kind": Task.Kind.BUG_FIX,
            "prompt": "calc.ops.div raises ZeroDivisionError; return None instead and add a test.",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    task = Task.objects.get(contractor=contractor)
    assert len(task.commit_sha) == 40

    wait_for(
        lambda: Task.objects.get(pk=task.pk).status != Task.Status.GENERATING,
        message="both candidates",
    )
    task.refresh_from_db()
    assert task.status == Task.Status.AWAITING_PREFERENCE
    candidates = Candidate.objects.filter(turn__task=task)
    assert sorted(c.slot for c in candidates) == ["A", "B"]
    # The two slots hold the project's two endpoints, one each.
    assert {c.endpoint_id for c in candidates} == {
        pool_endpoints(project)[0].pk,
        pool_endpoints(project)[1].pk,
    }
    for candidate in candidates:
        assert candidate.status == Candidate.Status.SUCCEEDED
        assert candidate.diff.startswith("--- a/")
        assert candidate.attempts == 1

    page = carol.get(reverse("tasks:detail", args=[task.pk])).content.decode()
    assert "Candidate A" in page and "Candidate B" in page
    assert (
        pool_endpoints(project)[0].name not in page and pool_endpoints(project)[1].name not in page
    )

    response = carol.post(
        reverse("tasks:submit", args=[task.pk]),
        _judgement_post(project, -2, "A guards the division and keeps the API; B does not."),
    )
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.status == Task.Status.SUBMITTED

    rita.post(reverse("reviews:claim", args=[task.pk]))
    response = rita.post(
        reverse("reviews:decide", args=[task.pk]),
        {"decision": "BOUNCE", "feedback": "Say why B's change is unsafe."},
    )
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.status == Task.Status.BOUNCED

    carol.post(reverse("tasks:revise", args=[task.pk]))
    response = carol.post(
        reverse("tasks:submit", args=[task.pk]),
        _judgement_post(project, -3, "B divides without a guard and will crash on zero input."),
    )
    assert response.status_code == 302
    rita.post(reverse("reviews:claim", args=[task.pk]))
    rita.post(reverse("reviews:decide", args=[task.pk]), {"decision": "ACCEPT", "feedback": ""})
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED
    assert task.round == 2
    # Both rounds are kept, never overwritten.
    assert list(Judgement.objects.filter(turn__task=task).values_list("round", "preference")) == [
        (1, -2),
        (2, -3),
    ]
    assert list(Review.objects.filter(task=task).values_list("round", "decision")) == [
        (1, "BOUNCE"),
        (2, "ACCEPT"),
    ]
    assert list(
        TaskEvent.objects.filter(task=task, kind=TaskEvent.Kind.STATUS).values_list(
            "to_status", flat=True
        )
    ) == [
        "DRAFT", "GENERATING", "AWAITING_PREFERENCE", "SUBMITTED", "BOUNCED",
        "AWAITING_PREFERENCE", "SUBMITTED", "ACCEPTED",
    ]  # fmt: skip
    # Each round was claimed before it was decided, and the claims are in the timeline.
    assert TaskEvent.objects.filter(task=task, kind=TaskEvent.Kind.CLAIM).count() == 2

    out = tmp_path / "export.jsonl"
    call_command("export_dataset", "--project", project.name, "--output", str(out))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 1
    record = records[0]
    assert record["task_id"] == task.pk
    assert record["commit_sha"] == task.commit_sha
    assert record["preference"] == -3 and record["preferred_slot"] == "A"
    assert record["rounds"] == 2
    assert record["reviewer_ids"] == [reviewer.pk]
    assert {record["candidates"]["A"]["endpoint"], record["candidates"]["B"]["endpoint"]} == {
        pool_endpoints(project)[0].name,
        pool_endpoints(project)[1].name,
    }
