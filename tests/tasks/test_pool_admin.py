"""The admin's view of a pool: what each endpoint does now, adding one mid-project and
retiring one on the project's page, with the admin role's own permissions."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from django.urls import reverse

from tasks.models import Candidate, ProjectEndpoint
from tests.factories import ModelEndpointFactory, ProjectFactory, pool_endpoints
from tests.tasks.helpers import create_task


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def _inline(project, *, extra: dict | None = None) -> dict:
    rows = list(project.pool.order_by("pk"))
    data = {
        "name": project.name, "guidelines": project.guidelines,
        "rubric_axes": json.dumps(project.rubric_axes),
        "pay_per_task": "280.00", "min_justification_chars": "20", "system_prompt": "",
        "min_turns": "1", "max_turns": "3", "pair_sampling": project.pair_sampling,
        "is_active": "on", "hourly_rate_cap": "", "claim_minutes": "60", "max_rounds": "",
        "overlap_percent": "0", "gold_percent": "0", "audit_percent": "0",
        "pay_per_judging_task": "0",
        "pool-TOTAL_FORMS": str(len(rows) + (1 if extra else 0)),
        "pool-INITIAL_FORMS": str(len(rows)), "pool-MIN_NUM_FORMS": "0",
        "pool-MAX_NUM_FORMS": "1000", "_save": "Save",
    }  # fmt: skip
    for n, row in enumerate(rows):
        data |= {
            f"pool-{n}-id": str(row.pk), f"pool-{n}-project": str(project.pk),
            f"pool-{n}-endpoint": str(row.endpoint_id), f"pool-{n}-weight": str(row.weight),
        }  # fmt: skip
        if row.is_enabled:
            data[f"pool-{n}-is_enabled"] = "on"
    if extra:
        n = len(rows)
        data |= {f"pool-{n}-{key}": value for key, value in extra.items()}
    return data


def test_an_admin_adds_and_retires_endpoints_on_the_project_page(admin_client):
    project = ProjectFactory(name="Pool project")
    url = reverse("admin:tasks_project_change", args=[project.pk])
    newcomer = ModelEndpointFactory(name="newcomer")
    response = admin_client.post(
        url, _inline(project, extra={"endpoint": newcomer.pk, "weight": "2", "is_enabled": "on"})
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert [e.name for e in pool_endpoints(project)][-1] == "newcomer"
    assert project.pool.get(endpoint=newcomer).weight == 2
    first = project.pool.order_by("pk").first()
    data = _inline(project)
    del data["pool-0-is_enabled"]
    assert admin_client.post(url, data).status_code == 302
    first.refresh_from_db()
    assert first.is_enabled is False
    page = admin_client.get(url).content.decode()
    assert "retired" in page and page.count("drawing tasks") == 2
    listing = admin_client.get(reverse("admin:tasks_project_changelist")).content.decode()
    assert "2 drawing tasks, 1 retired" in listing


def test_the_same_endpoint_twice_in_a_pool_is_refused(admin_client):
    project = ProjectFactory()
    url = reverse("admin:tasks_project_change", args=[project.pk])
    twice = pool_endpoints(project)[0]
    response = admin_client.post(url, _inline(project, extra={"endpoint": twice.pk, "weight": "1"}))
    assert response.status_code == 200
    assert "Please correct the duplicate data for endpoint" in response.content.decode()
    assert ProjectEndpoint.objects.filter(project=project).count() == 2


@override_settings(MARLIN_POOL_SATURATION_QUEUE=1)
def test_the_admin_sees_a_saturated_endpoint(admin_client, contractor, ready_repository):
    project = ProjectFactory(name="Busy project")
    busy = pool_endpoints(project)[0]
    busy.max_concurrency = 1
    busy.save()
    for _ in range(2):
        create_task(contractor=contractor, project=project, repository=ready_repository)
    running = Candidate.objects.filter(endpoint=busy).first()
    Candidate.objects.filter(pk=running.pk).update(status=Candidate.Status.RUNNING)
    page = admin_client.get(reverse("admin:tasks_project_change", args=[project.pk]))
    assert "saturated (1 running, 1 waiting)" in page.content.decode()
