"""Admins manage people through roles only, and no server secret can be named as a model key.

Both were attacks that worked: the admin role ticked "Superuser status" in the Django admin
(it holds auth.change_user), and an endpoint naming DJANGO_SECRET_KEY as its key variable sent
the secret to a URL of the admin's choosing once a contractor started a task.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from marlin import roles
from tasks import generation_services
from tasks.models import Candidate, ModelEndpoint
from tasks.providers.base import EndpointConfig, ProviderError
from tests.factories import ModelEndpointFactory, ProjectFactory
from tests.fakes.model_servers import FakeOpenAIServer, ok
from tests.tasks.helpers import create_task

SECRET = "the-worker-secret-0123456789"


@pytest.fixture
def admin_client(client, admin_user):
    assert not admin_user.is_superuser and admin_user.is_staff
    client.force_login(admin_user)
    return client


def _change_form(user: User, **overrides) -> dict:
    data = {
        "username": user.username, "first_name": "", "last_name": "", "email": user.email,
        "is_active": "on", "groups": [g.pk for g in user.groups.all()],
        "last_login_0": "", "last_login_1": "", "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00", "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
    }  # fmt: skip
    data.update(overrides)
    return data


@pytest.mark.parametrize("target", ["self", "contractor"])
def test_the_admin_role_cannot_tick_superuser_status(admin_client, admin_user, contractor, target):
    user = admin_user if target == "self" else contractor
    url = reverse("admin:auth_user_change", args=[user.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="is_superuser"' not in page and 'name="user_permissions"' not in page
    everything = Permission.objects.values_list("pk", flat=True)
    response = admin_client.post(
        url,
        _change_form(
            user, first_name="Renamed", is_superuser="on", is_staff="on",
            user_permissions=list(everything),
        ),
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[-3000:]
    user.refresh_from_db()
    assert user.first_name == "Renamed"  # the allowed edit went through
    assert not user.is_superuser
    assert not user.user_permissions.exists()
    # Staff status follows the role: only the admin role has it.
    assert user.is_staff == (target == "self")


def test_a_role_change_in_the_admin_keeps_staff_status_in_step(admin_client, contractor):
    admin_group = roles_group(roles.ADMIN)
    url = reverse("admin:auth_user_change", args=[contractor.pk])
    admin_client.post(url, _change_form(contractor, groups=[admin_group.pk]))
    contractor.refresh_from_db()
    assert contractor.is_staff and not contractor.is_superuser


def roles_group(name: str):
    from django.contrib.auth.models import Group

    return Group.objects.get(name=name)


def test_the_admin_role_cannot_change_a_superuser(admin_client, db):
    boss = User.objects.create_superuser("boss", "boss@example.com", "pw-boss-123456")
    url = reverse("admin:auth_user_change", args=[boss.pk])
    response = admin_client.post(url, _change_form(boss, email="attacker@example.com"))
    assert response.status_code == 403
    password = reverse("admin:auth_user_password_change", args=[boss.pk])
    response = admin_client.post(
        password, {"password1": "taken-over-12345", "password2": "taken-over-12345"}
    )
    assert response.status_code == 403
    boss.refresh_from_db()
    assert boss.email == "boss@example.com" and boss.check_password("pw-boss-123456")


def test_the_api_refuses_privileges_and_superuser_accounts(admin_user, contractor, db):
    api = APIClient()
    api.force_login(admin_user)
    url = reverse("api-admin-user-detail", args=[contractor.pk])
    for field, value in (("is_superuser", True), ("is_staff", True), ("user_permissions", [1])):
        response = api.patch(url, {field: value}, format="json")
        assert response.status_code == 400
        assert "through their role only" in " ".join(response.json()[field])
    contractor.refresh_from_db()
    assert not contractor.is_superuser and not contractor.is_staff
    response = api.post(
        reverse("api-admin-user-list"),
        {"username": "mallory", "role": "admin", "is_superuser": True},
        format="json",
    )
    assert response.status_code == 400
    assert not User.objects.filter(username="mallory").exists()
    boss = User.objects.create_superuser("boss", "boss@example.com", "pw-boss-123456")
    response = api.patch(
        reverse("api-admin-user-detail", args=[boss.pk]),
        {"email": "attacker@example.com"},
        format="json",
    )
    assert response.status_code == 403
    assert "superuser" in response.json()["detail"]
    boss.refresh_from_db()
    assert boss.email == "boss@example.com"


# --- model keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "HOME"]
)
def test_a_server_variable_cannot_be_an_endpoints_key(db, name):
    endpoint = ModelEndpoint(name="Exfil", provider="openai", model_id="m", api_key_env=name)
    with pytest.raises(ValidationError, match="not a declared model variable"):
        endpoint.full_clean()


def test_nor_can_it_be_handed_to_a_coding_agent(db):
    endpoint = ModelEndpoint(
        name="Agent", provider="command",
        parameters={"command": ["agent"], "pass_env": ["DJANGO_SECRET_KEY"]},
    )  # fmt: skip
    with pytest.raises(ValidationError, match="pass_env: DJANGO_SECRET_KEY is not a declared"):
        endpoint.full_clean()


def test_declared_names_are_accepted(db):
    for name in ("OPENAI_API_KEY", "MARLIN_MODEL_KEY_VENDOR"):
        ModelEndpoint(
            name=f"ok-{name}", provider="openai", model_id="m", api_key_env=name
        ).full_clean()


def test_the_admin_pages_and_the_api_refuse_it(admin_client, admin_user):
    response = admin_client.post(
        reverse("admin:tasks_modelendpoint_add"),
        {"name": "Exfil", "provider": "openai", "model_id": "m", "api_key_env":
         "DJANGO_SECRET_KEY", "parameters": "{}", "max_concurrency": 1, "is_enabled": "on"},
    )  # fmt: skip
    assert response.status_code == 200
    assert "not a declared model variable" in response.content.decode()
    api = APIClient()
    api.force_login(admin_user)
    response = api.post(
        reverse("api-admin-endpoint-list"),
        {"name": "Exfil", "provider": "openai", "model_id": "m",
         "api_key_env": "DATABASE_URL"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 400
    assert "not a declared model variable" in " ".join(response.json()["api_key_env"])
    assert not ModelEndpoint.objects.filter(name="Exfil").exists()


def test_a_row_saved_before_the_rule_never_sends_the_secret(
    monkeypatch, ready_repository, contractor
):
    monkeypatch.setenv("DJANGO_SECRET_KEY", SECRET)
    with FakeOpenAIServer(default=ok("no")) as server:
        # Written around the model's validation, as an old row or a raw SQL edit would be.
        exfil = ModelEndpointFactory(
            provider="openai", model_id="m", base_url=server.base_url,
            api_key_env="DJANGO_SECRET_KEY",
        )  # fmt: skip
        project = ProjectFactory(endpoint_a=exfil)
        task = create_task(contractor=contractor, project=project, repository=ready_repository)
        candidate = Candidate.objects.get(turn__task=task, endpoint=exfil)
        generation_services.candidate_generate(candidate_id=candidate.pk)
        assert server.requests == []  # nothing was sent, the secret least of all
    candidate.refresh_from_db()
    assert candidate.status == Candidate.Status.FAILED
    assert "not configured on this server" in candidate.error
    config = EndpointConfig(
        provider="openai", name="x", model_id="m", parameters={}, api_key_env="DATABASE_URL"
    )
    with pytest.raises(ProviderError, match="not configured"):
        config.api_key()


def test_settings_refuse_to_declare_a_server_variable(monkeypatch):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "import marlin.settings.base"],
        env={"PATH": "/usr/bin:/bin", "MARLIN_MODEL_KEY_NAMES": "OPENAI_API_KEY,DJANGO_SECRET_KEY",
             "DJANGO_SECRET_KEY": "x" * 50},
        capture_output=True, text=True, cwd=str(settings.BASE_DIR),
    )  # fmt: skip
    assert result.returncode != 0
    assert "MARLIN_MODEL_KEY_NAMES may not list 'DJANGO_SECRET_KEY'" in result.stderr


def test_a_coding_agent_is_never_handed_a_server_variable(monkeypatch):
    from tasks.providers import command

    monkeypatch.setenv("DJANGO_SECRET_KEY", SECRET)
    config = EndpointConfig(
        provider="command", name="agent", model_id="", api_key_env="",
        parameters={"command": ["true"], "pass_env": ["DJANGO_SECRET_KEY"]},
    )  # fmt: skip
    with pytest.raises(ProviderError, match="not configured") as caught:
        command._environment(config)
    assert "DJANGO_SECRET_KEY" in caught.value.detail and SECRET not in caught.value.detail


def test_network_for_an_agent_is_a_yes_or_no(db):
    endpoint = ModelEndpoint(
        name="Agent", provider="command", parameters={"command": ["a"], "network": "yes"}
    )
    with pytest.raises(ValidationError, match="network is true"):
        endpoint.full_clean()
