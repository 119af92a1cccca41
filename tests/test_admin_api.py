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
    endpoint_ids = [response.json()["id"], ModelEndpointFactory().pk]
    response = api.post(
        reverse("api-admin-project-list"),
        {
            "name": "Security fixes",
            "guidelines": "Judge as a security reviewer would.",
            "pay_per_task": "250.00",
            "max_rounds": 2,
            "pair_sampling": "weighted",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert "fewer than two endpoints" in response.json()["pool_summary"]
    project = Project.objects.get(name="Security fixes")
    assert project.max_rounds == 2 and project.axis_keys[0] == "correctness"
    for endpoint_id, weight in zip(endpoint_ids, ("1.00", "2.50"), strict=True):
        response = api.post(
            reverse("api-admin-project-endpoint-list"),
            {"project": project.pk, "endpoint": endpoint_id, "weight": weight},
            format="json",
        )
        assert response.status_code == 201, response.content
    body = api.get(reverse("api-admin-project-detail", args=[project.pk])).json()
    assert [(row["endpoint"], row["weight"], row["state"]) for row in body["pool"]] == [
        (endpoint_ids[0], 1.0, "drawing tasks"),
        (endpoint_ids[1], 2.5, "drawing tasks"),
    ]
    assert body["pool_summary"] == "2 drawing tasks"


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


def test_an_endpoint_is_in_a_pool_once_and_a_bad_rubric_is_refused(api, project):
    first = project.pool.order_by("pk").first()
    response = api.post(
        reverse("api-admin-project-endpoint-list"),
        {"project": project.pk, "endpoint": first.endpoint_id},
        format="json",
    )
    assert response.status_code == 400
    assert "already in the project's pool" in response.json()["non_field_errors"][0]
    response = api.patch(
        reverse("api-admin-project-endpoint-detail", args=[first.pk]),
        {"endpoint": ModelEndpointFactory().pk, "weight": "0"},
        format="json",
    )
    assert response.status_code == 400
    assert "greater than or equal to 0.01" in response.json()["weight"][0]
    response = api.patch(
        reverse("api-admin-project-endpoint-detail", args=[first.pk]),
        {"endpoint": ModelEndpointFactory().pk},
        format="json",
    )
    assert response.status_code == 400
    assert "keeps its project and endpoint" in response.json()["non_field_errors"][0]
    assert project.pool.count() == 2
    url = reverse("api-admin-project-detail", args=[project.pk])
    response = api.patch(url, {"pair_sampling": "best"}, format="json")
    assert response.status_code == 400
    assert "not a valid choice" in response.json()["pair_sampling"][0]
    response = api.patch(url, {"rubric_axes": [{"key": "Bad Key"}]}, format="json")
    assert response.status_code == 400
    assert "needs a key (lower_snake_case)" in response.json()["rubric_axes"][0]
    project.refresh_from_db()
    assert project.pair_sampling == "adaptive" and project.axis_keys[0] == "correctness"


def test_retiring_an_endpoint_over_the_api_leaves_its_tasks_alone(api, project):
    first = project.pool.order_by("pk").first()
    response = api.patch(
        reverse("api-admin-project-endpoint-detail", args=[first.pk]),
        {"is_enabled": False},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = api.get(reverse("api-admin-project-detail", args=[project.pk])).json()
    assert [row["state"] for row in body["pool"]] == ["retired", "drawing tasks"]
    assert "no new tasks" in body["pool_summary"]
    # Never deleted (the leaderboard keeps the row): the admin role has no delete permission.
    response = api.delete(reverse("api-admin-project-endpoint-detail", args=[first.pk]))
    assert response.status_code == 403
    assert project.pool.count() == 2


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


def test_an_admin_sets_the_quality_shares_and_out_of_range_is_refused(api, project):
    url = reverse("api-admin-project-detail", args=[project.pk])
    response = api.patch(
        url,
        {"overlap_percent": 10, "gold_percent": 5, "audit_percent": 20,
         "pay_per_judging_task": "30.00"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 200, response.content
    response = api.patch(url, {"overlap_percent": 101}, format="json")
    assert response.status_code == 400
    assert "less than or equal to 100" in response.json()["overlap_percent"][0]
    project.refresh_from_db()
    assert (project.overlap_percent, project.gold_percent, project.audit_percent) == (10, 5, 20)
    assert str(project.pay_per_judging_task) == "30.00"
