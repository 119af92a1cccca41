"""Admins manage endpoints, projects, people and the catalogue over the API, with the same
validation as the Django admin."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework.test import APIClient

from repos.models import Repository
from tasks.models import ModelEndpoint, Project
from tests.factories import ModelEndpointFactory


@pytest.fixture
def api(admin_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


def test_an_admin_adds_an_endpoint_and_a_project_comparing_it(api):
    response = api.post(
        reverse("api-admin-endpoint-list"),
        {
            "name": "Local vLLM",
            "provider": "openai",
            "model_id": "qwen-coder",
            "base_url": "http://127.0.0.1:8000/v1",
            "api_key_env": "VLLM_KEY",
            "max_concurrency": 2,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    other = ModelEndpointFactory()
    response = api.post(
        reverse("api-admin-project-list"),
        {
            "name": "Security fixes",
            "guidelines": "Judge as a security reviewer would.",
            "endpoint_a": response.json()["id"],
            "endpoint_b": other.pk,
            "pay_per_task": "250.00",
            "max_rounds": 2,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    project = Project.objects.get(name="Security fixes")
    assert project.max_rounds == 2 and project.axis_keys[0] == "correctness"


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"provider": "command", "parameters": {}}, "parameters", "command provider needs"),
        ({"provider": "openai", "model_id": ""}, "model_id", "Name the model"),
        ({"api_key_env": "sk-live-123"}, "api_key_env", "name of an environment variable"),
        ({"base_url": "ftp://x"}, "base_url", "http:// or https://"),
    ],
)
def test_an_endpoint_the_admin_forms_would_refuse_is_refused(api, payload, field, message):
    body = {"name": "Bad", "provider": "demo", **payload}
    response = api.post(reverse("api-admin-endpoint-list"), body, format="json")
    assert response.status_code == 400
    assert message in " ".join(response.json()[field])
    assert not ModelEndpoint.objects.filter(name="Bad").exists()


def test_a_project_comparing_an_endpoint_with_itself_is_refused(api, project):
    response = api.patch(
        reverse("api-admin-project-detail", args=[project.pk]),
        {"endpoint_b": project.endpoint_a_id, "rubric_axes": [{"key": "Bad Key"}]},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert "two different endpoints" in body["endpoint_b"][0]
    assert "needs a key (lower_snake_case)" in body["rubric_axes"][0]
    project.refresh_from_db()
    assert project.endpoint_b_id != project.endpoint_a_id


def test_an_admin_adds_a_person_with_one_role_and_cannot_grant_superpowers(api):
    response = api.post(
        reverse("api-admin-user-list"),
        {
            "username": "newreviewer",
            "email": "nr@example.com",
            "role": "reviewer",
            "is_staff": True,
            "is_superuser": True,
        },
        format="json",
    )
    # Refused outright, not quietly ignored: people are managed through their role.
    assert response.status_code == 400
    assert "through their role only" in " ".join(response.json()["is_superuser"])
    assert not get_user_model().objects.filter(username="newreviewer").exists()
    response = api.post(
        reverse("api-admin-user-list"),
        {"username": "newreviewer", "email": "nr@example.com", "role": "reviewer"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["roles"] == ["reviewer"]
    user = get_user_model().objects.get(username="newreviewer")
    assert not user.is_staff and not user.is_superuser and not user.has_usable_password()
    response = api.patch(
        reverse("api-admin-user-detail", args=[user.pk]), {"role": "admin"}, format="json"
    )
    assert response.json()["roles"] == ["admin"]
    user.refresh_from_db()
    assert user.is_staff  # the admin role needs the Django admin
    response = api.patch(
        reverse("api-admin-user-detail", args=[user.pk]), {"role": "overlord"}, format="json"
    )
    assert response.status_code == 400 and "role" in response.json()
    # No one deletes people (their work and pay refer to them): deactivate instead.
    assert api.delete(reverse("api-admin-user-detail", args=[user.pk])).status_code == 403
    assert get_user_model().objects.filter(pk=user.pk).exists()


def test_an_admin_withdraws_a_repository_and_caps_its_tasks(api, ready_repository):
    url = reverse("api-admin-repository", args=[ready_repository.pk])
    response = api.patch(url, {"is_enabled": False, "max_open_tasks": 2, "stars": 9}, format="json")
    assert response.status_code == 200
    repository = Repository.objects.get(pk=ready_repository.pk)
    assert (repository.is_enabled, repository.max_open_tasks) == (False, 2)
    assert repository.stars == ready_repository.stars  # not an editable field here


@pytest.mark.parametrize("persona", ["contractor", "reviewer", "outsider"])
def test_nobody_else_manages_anything(persona, request, project, ready_repository):
    user = request.getfixturevalue(persona)
    client = APIClient()
    client.force_authenticate(user)
    calls = [
        client.get(reverse("api-admin-endpoint-list")),
        client.post(reverse("api-admin-endpoint-list"), {"name": "x"}, format="json"),
        client.patch(
            reverse("api-admin-project-detail", args=[project.pk]), {"name": "x"}, format="json"
        ),
        client.post(
            reverse("api-admin-user-list"), {"username": "x", "role": "admin"}, format="json"
        ),
        client.patch(
            reverse("api-admin-repository", args=[ready_repository.pk]),
            {"is_enabled": False},
            format="json",
        ),
    ]
    assert [r.status_code for r in calls] == [403] * 5
    assert not get_user_model().objects.filter(username="x").exists()
    project.refresh_from_db()
    assert project.name != "x"
    assert Repository.objects.get(pk=ready_repository.pk).is_enabled
