"""Who may open what: outsiders get 404 or 403, anonymous users go to the login page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tasks.models import Candidate, Task
from tests.tasks.helpers import create_task, generate_all, submit


@pytest.fixture
def submitted_task(ready_repository, project, contractor):
    return submit(
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
    )


def test_a_contractor_cannot_open_another_contractors_task(
    client, submitted_task, other_contractor
):
    client.force_login(other_contractor)
    candidate = Candidate.objects.filter(turn__task=submitted_task).first()
    assert client.get(reverse("tasks:detail", args=[submitted_task.pk])).status_code == 404
    assert client.get(reverse("tasks:candidates", args=[submitted_task.pk])).status_code == 404
    assert client.post(reverse("tasks:revise", args=[submitted_task.pk])).status_code == 404
    assert client.post(reverse("tasks:candidate_retry", args=[candidate.pk])).status_code == 404
    # And the task is not listed among theirs.
    assert submitted_task.title not in client.get(reverse("tasks:list")).content.decode()


def test_the_owner_can_open_the_task(client, submitted_task, contractor):
    client.force_login(contractor)
    assert client.get(reverse("tasks:detail", args=[submitted_task.pk])).status_code == 200


def test_a_contractor_cannot_review(client, submitted_task, other_contractor):
    client.force_login(other_contractor)
    assert client.get(reverse("reviews:queue")).status_code == 403
    response = client.post(
        reverse("reviews:decide", args=[submitted_task.pk]), {"decision": "ACCEPT"}
    )
    assert response.status_code == 403
    submitted_task.refresh_from_db()
    assert submitted_task.status == Task.Status.SUBMITTED


def test_a_contractor_cannot_export(client, submitted_task, contractor):
    client.force_login(contractor)
    assert client.get(reverse("reviews:export")).status_code == 403
    assert client.get(reverse("reviews:export"), {"format": "native"}).status_code == 403


def test_a_reviewer_cannot_review_their_own_work(client, ready_repository, project, reviewer):
    # A person holding both roles submits a task, then tries to review it.
    from django.contrib.auth.models import Group

    reviewer.groups.add(Group.objects.get(name="contractor"))
    task = submit(
        generate_all(create_task(contractor=reviewer, project=project, repository=ready_repository))
    )
    client.force_login(reviewer)
    assert task.title not in client.get(reverse("reviews:queue")).content.decode()
    assert client.get(reverse("reviews:detail", args=[task.pk])).status_code == 403
    assert client.post(reverse("reviews:claim", args=[task.pk])).status_code == 403
    response = client.post(reverse("reviews:decide", args=[task.pk]), {"decision": "ACCEPT"})
    assert response.status_code == 403
    task.refresh_from_db()
    assert task.status == Task.Status.SUBMITTED


def test_a_user_without_a_role_sees_no_work(client, submitted_task, outsider):
    client.force_login(outsider)
    assert client.get(reverse("tasks:list")).status_code == 403
    assert client.get(reverse("tasks:create")).status_code == 403
    assert client.get(reverse("reviews:queue")).status_code == 403


@pytest.mark.parametrize(
    "name",
    ["home", "tasks:list", "tasks:create", "reviews:queue", "reviews:export", "repos:list"],
)
def test_anonymous_users_are_sent_to_login(client, db, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_anonymous_users_cannot_open_a_task(client, submitted_task):
    response = client.get(reverse("tasks:detail", args=[submitted_task.pk]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_each_role_lands_on_its_own_page(client, contractor, reviewer, admin_user):
    expected = {contractor: "tasks:list", reviewer: "reviews:queue", admin_user: "reviews:export"}
    for user, page in expected.items():
        client.force_login(user)
        assert client.get(reverse("home"))["Location"] == reverse(page)


@pytest.mark.parametrize("persona", ["reviewer", "outsider"])
def test_only_contractors_and_admins_can_clone(client, served_repository, persona, request):
    client.force_login(request.getfixturevalue(persona))
    response = client.post(reverse("repos:clone", args=[served_repository.pk]))
    assert response.status_code == 403
    served_repository.refresh_from_db()
    assert served_repository.clone_status == "NOT_CLONED"


def test_a_refetch_keeps_the_cache_usable_for_new_tasks(
    client, ready_repository, project, contractor
):
    ready_repository.queue_clone()  # a re-fetch is waiting for a worker
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    assert len(task.commit_sha) == 40
