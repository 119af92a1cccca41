from __future__ import annotations

import pytest
from django.urls import reverse

from marlin.exceptions import ApplicationError
from repos.models import Repository
from tasks import services
from tasks.models import Candidate, Task, TaskEvent, Turn
from tests.factories import pool_endpoints
from tests.tasks.helpers import create_task


def _form(project, repository, **overrides) -> dict:
    data = {
        "project": project.pk,
        "repository": repository.pk,
        "ref": "",
        "title": "Guard division",
        "kind": Task.Kind.BUG_FIX,
        "prompt": "Make calc.ops.div safe for zero.",
    }
    data.update(overrides)
    return data


def test_it_creates_a_task_pinned_to_the_head_with_two_queued_candidates(
    ready_repository, project, contractor, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        task = create_task(contractor=contractor, project=project, repository=ready_repository)
    assert task.status == Task.Status.GENERATING
    assert len(task.commit_sha) == 40
    candidates = Candidate.objects.filter(turn__task=task)
    assert sorted(candidates.values_list("slot", flat=True)) == ["A", "B"]
    assert {c.endpoint_id for c in candidates} == {
        pool_endpoints(project)[0].pk,
        pool_endpoints(project)[1].pk,
    }
    assert all(c.status == Candidate.Status.QUEUED for c in candidates)
    # One generation job per candidate, enqueued only after the commit.
    assert len(callbacks) == 2
    assert list(TaskEvent.objects.filter(task=task).values_list("to_status", flat=True)) == [
        "DRAFT",
        "GENERATING",
    ]


def test_it_pins_a_named_ref(ready_repository, project, contractor):
    task = services.task_create(
        contractor=contractor,
        project=project,
        repository=ready_repository,
        ref="main",
        title="t",
        kind=Task.Kind.DOCS,
        prompt="Document ops.",
    )
    head = create_task(contractor=contractor, project=project, repository=ready_repository)
    assert task.commit_sha == head.commit_sha


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"prompt": "   "}, "The prompt is empty."),
        ({"ref": "--upload-pack=touch /tmp/pwned"}, "not a valid branch"),
        ({"ref": "no-such-branch"}, "no branch, tag or commit named"),
    ],
)
def test_it_rejects_bad_input_and_stores_nothing(
    ready_repository, project, contractor, overrides, message
):
    kwargs = {
        "contractor": contractor,
        "project": project,
        "repository": ready_repository,
        "ref": "",
        "title": "t",
        "kind": Task.Kind.BUG_FIX,
        "prompt": "Do it.",
    }
    kwargs.update(overrides)
    with pytest.raises(ApplicationError, match=message):
        services.task_create(**kwargs)
    assert not Task.objects.exists()
    assert not Turn.objects.exists()


def test_it_refuses_an_oversized_prompt(ready_repository, project, contractor, settings):
    settings.MARLIN_PROMPT_MAX_CHARS = 100
    with pytest.raises(ApplicationError, match="limit is 100"):
        create_task(
            contractor=contractor, project=project, repository=ready_repository, prompt="x" * 101
        )
    assert not Task.objects.exists()


def test_it_refuses_a_repository_that_is_not_cloned(served_repository, project, contractor):
    with pytest.raises(ApplicationError, match="not cloned yet"):
        create_task(contractor=contractor, project=project, repository=served_repository)
    assert not Task.objects.exists()


def test_the_form_shows_errors_next_to_fields_and_stores_nothing(
    client, ready_repository, project, contractor, settings
):
    settings.MARLIN_PROMPT_MAX_CHARS = 100
    client.force_login(contractor)
    response = client.post(
        reverse("tasks:create"), _form(project, ready_repository, prompt="y" * 500)
    )
    assert response.status_code == 200
    assert "at most 100 characters" in response.content.decode()
    response = client.post(reverse("tasks:create"), _form(project, ready_repository, title=""))
    assert "This field is required" in response.content.decode()
    assert not Task.objects.exists()


def test_the_form_lists_only_ready_repositories(client, served_repository, project, contractor):
    client.force_login(contractor)
    assert served_repository.clone_status == Repository.CloneStatus.NOT_CLONED
    response = client.post(reverse("tasks:create"), _form(project, served_repository))
    assert "Select a valid choice" in response.content.decode()
    assert not Task.objects.exists()


def test_a_missing_clone_cache_is_a_form_error_not_a_crash(
    client, ready_repository, project, contractor
):
    import shutil

    from repos.services import repository_cache_path

    shutil.rmtree(repository_cache_path(ready_repository))
    client.force_login(contractor)
    response = client.post(reverse("tasks:create"), _form(project, ready_repository))
    assert response.status_code == 200
    assert "missing; clone it again" in response.content.decode()
    assert not Task.objects.exists()


def test_each_task_counts_on_its_repository(ready_repository, project, contractor):
    create_task(contractor=contractor, project=project, repository=ready_repository)
    create_task(contractor=contractor, project=project, repository=ready_repository)
    ready_repository.refresh_from_db()
    assert ready_repository.task_count == 2


def test_the_open_task_quota_of_a_repository_holds(ready_repository, project, contractor):
    ready_repository.max_open_tasks = 1
    ready_repository.save()
    create_task(contractor=contractor, project=project, repository=ready_repository)
    with pytest.raises(ApplicationError, match="maximum of 1 open tasks"):
        create_task(contractor=contractor, project=project, repository=ready_repository)
    assert Task.objects.count() == 1
    # An accepted task no longer counts as open.
    Task.objects.update(status=Task.Status.ACCEPTED)
    create_task(contractor=contractor, project=project, repository=ready_repository)
    assert Task.objects.count() == 2


def test_a_withdrawn_repository_takes_no_new_tasks(ready_repository, project, contractor):
    ready_repository.is_enabled = False
    ready_repository.save()
    with pytest.raises(ApplicationError, match="not available for new tasks"):
        create_task(contractor=contractor, project=project, repository=ready_repository)
    assert not Task.objects.exists()
