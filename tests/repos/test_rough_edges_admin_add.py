"""Issue 15: an admin adds a repository from an allowed internal git server in the Django admin.

The loopback git server of the test run stands in for the internal server: its address is on
MARLIN_GIT_ALLOWED_BASES, exactly as an operator lists an internal host.
"""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from repos import git_client
from repos.models import Repository
from tests.conftest import DEMO_FILES, wait_for
from tests.factories import RepositoryFactory


def add_url() -> str:
    return reverse("admin:repos_repository_add")


def _form(clone_url: str, **fields) -> dict[str, str]:
    return {"clone_url": clone_url, "description": "", "language": "", **fields}


def _refused(client, clone_url: str, message: str, **fields) -> None:
    before = Repository.objects.count()
    response = client.post(add_url(), _form(clone_url, **fields))
    assert response.status_code == 400
    assert re.search(re.escape(message), response.content.decode()), response.content.decode()
    assert Repository.objects.count() == before  # nothing half-stored


def test_the_repository_list_offers_the_add_action(client, admin_user):
    client.force_login(admin_user)
    page = client.get(reverse("admin:repos_repository_changelist")).content.decode()
    assert f'href="{add_url()}"' in page
    form = client.get(add_url())
    assert form.status_code == 200
    assert "MARLIN_GIT_ALLOWED_BASES" in form.content.decode()


def test_it_adds_a_repository_of_an_allowed_internal_server_and_queues_its_clone(
    client, admin_user, git_server, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            add_url(),
            _form(
                f"{git_server.base_url}/infra/deploy-tools",
                description="Internal deploy helpers",
                language="Go",
                topics="ops, CLI",
                default_branch="trunk",
            ),
        )
    repository = Repository.objects.get(full_name="infra/deploy-tools")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:repos_repository_change", args=[repository.pk])
    assert repository.clone_url == f"{git_server.base_url}/infra/deploy-tools.git"
    assert repository.html_url == f"{git_server.base_url}/infra/deploy-tools"
    assert (repository.default_branch, repository.language) == ("trunk", "Go")
    assert repository.topics == ["ops", "cli"]
    assert repository.clone_status == Repository.CloneStatus.QUEUED
    assert len(callbacks) == 2  # the clone job and the language list's refresh
    # Searchable at once, like an imported row.
    assert "deploy helpers" in repository.search_text


def test_it_refuses_a_host_not_on_the_allow_list(client, admin_user, git_server):
    client.force_login(admin_user)
    allowed = ", ".join(settings.MARLIN_GIT_ALLOWED_BASES)
    _refused(client, "https://git.evil.example/a/b.git", f"Only repositories on {allowed} can")


def test_it_refuses_credentials_in_the_address(client, admin_user, git_server):
    client.force_login(admin_user)
    host = git_server.base_url.removeprefix("http://")
    _refused(
        client,
        f"http://deploy:s3cret@{host}/infra/tools.git",
        "The repository address may not carry credentials or queries.",
    )
    _refused(client, f"{git_server.base_url}/a/b/c.git", f"must look like {git_server.base_url}")


def test_it_refuses_a_repository_already_in_the_catalogue(client, admin_user, git_server):
    RepositoryFactory(full_name="infra/tools", clone_url=f"{git_server.base_url}/infra/tools.git")
    client.force_login(admin_user)
    _refused(client, f"{git_server.base_url}/INFRA/tools.git", "infra/tools is already in the")
    _refused(client, f"{git_server.base_url}/infra/tools.git", "is already in the catalogue")


def test_it_refuses_a_bad_field_with_the_rows_reason(client, admin_user, git_server):
    client.force_login(admin_user)
    _refused(
        client,
        f"{git_server.base_url}/infra/tools.git",
        "html_url must be an http:// or https:// address without a user name",
        html_url="javascript:alert(1)",
    )
    _refused(
        client,
        f"{git_server.base_url}/infra/tools.git",
        "clone_url does not match full_name",
        full_name="other/name",
    )


def test_people_without_the_add_permission_cannot_add(client, contractor, reviewer, git_server):
    for person in (contractor, reviewer):
        client.force_login(person)
        response = client.post(add_url(), _form(f"{git_server.base_url}/infra/tools.git"))
        assert response.status_code in (302, 403)
    assert not Repository.objects.exists()


@pytest.mark.worker
def test_a_real_worker_clones_a_repository_added_in_the_admin(
    celery_worker_process, admin_user, git_server
):
    git_client.create_bare_repository(
        git_server.root / "infra" / "calc.git", DEMO_FILES, message="Initial commit"
    )
    client = Client()
    client.force_login(admin_user)
    response = client.post(add_url(), _form(f"{git_server.base_url}/infra/calc.git"))
    assert response.status_code == 302
    repository = Repository.objects.get(full_name="infra/calc")
    wait_for(
        lambda: (
            Repository.objects.get(pk=repository.pk).clone_status
            in (Repository.CloneStatus.READY, Repository.CloneStatus.FAILED)
        ),
        timeout=60,
        message="the clone to finish",
    )
    repository.refresh_from_db()
    assert repository.clone_status == Repository.CloneStatus.READY, repository.clone_error
