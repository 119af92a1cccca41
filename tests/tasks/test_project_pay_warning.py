"""A project added in the admin needs its pay set on purpose: the add form starts empty and
refuses empty, the field explains itself, and a $0 project is saved only with a warning."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from tasks.admin import PAY_HELP
from tasks.models import Project, default_rubric_axes
from tests.factories import ModelEndpointFactory, ProjectFactory

ADD_URL = reverse("admin:tasks_project_add")
PAY_INPUT = re.compile(r'<input[^>]*name="pay_per_task"[^>]*>')
WARNING = "pays $0 per task"


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def _form(**overrides) -> dict:
    data = {
        "name": "Parser project",
        "guidelines": "Judge as a senior engineer would.",
        "rubric_axes": json.dumps(default_rubric_axes()),
        "pay_per_task": "45.00",
        "min_justification_chars": "50",
        "system_prompt": "",
        "min_turns": "1",
        "max_turns": "3",
        "pair_sampling": "adaptive",
        "pool-TOTAL_FORMS": "2",
        "pool-INITIAL_FORMS": "0",
        "pool-MIN_NUM_FORMS": "0",
        "pool-MAX_NUM_FORMS": "1000",
        "pool-0-endpoint": str(ModelEndpointFactory().pk),
        "pool-0-weight": "1",
        "pool-0-is_enabled": "on",
        "pool-1-endpoint": str(ModelEndpointFactory().pk),
        "pool-1-weight": "1",
        "pool-1-is_enabled": "on",
        "is_active": "on",
        "hourly_rate_cap": "",
        "claim_minutes": "60",
        "max_rounds": "",
        "overlap_percent": "0",
        "gold_percent": "0",
        "audit_percent": "0",
        "pay_per_judging_task": "0",
        "_save": "Save",
    }
    data.update(overrides)
    return data


def _warnings(response) -> list[str]:
    return [m.message for m in get_messages(response.wsgi_request) if m.level_tag == "warning"]


def test_the_add_form_starts_with_no_pay_and_explains_the_field(admin_client):
    page = admin_client.get(ADD_URL).content.decode()
    pay_input = PAY_INPUT.search(page).group(0)
    assert 'value="' not in pay_input  # no silent 0 to save by accident
    assert "required" in pay_input
    assert PAY_HELP in page


def test_a_project_without_pay_is_refused(admin_client):
    response = admin_client.post(ADD_URL, _form(pay_per_task=""))
    assert response.status_code == 200  # the form again, with the error
    assert "Set the pay per task" in response.content.decode()
    assert not Project.objects.filter(name="Parser project").exists()


def test_a_paid_project_is_saved_without_a_warning(admin_client):
    response = admin_client.post(ADD_URL, _form())
    assert response.status_code == 302
    assert Project.objects.get(name="Parser project").pay_per_task == Decimal("45.00")
    assert _warnings(response) == []


def test_a_zero_pay_project_is_saved_with_a_warning(admin_client):
    response = admin_client.post(ADD_URL, _form(pay_per_task="0"))
    assert response.status_code == 302
    assert Project.objects.get(name="Parser project").pay_per_task == 0
    [warning] = _warnings(response)
    assert WARNING in warning and "Parser project" in warning


def test_changing_a_project_to_zero_pay_warns_too(admin_client):
    project = ProjectFactory(name="Old project")
    change_url = reverse("admin:tasks_project_change", args=[project.pk])
    page = admin_client.get(change_url).content.decode()
    assert 'value="280.00"' in PAY_INPUT.search(page).group(0)  # an existing pay is shown
    assert PAY_HELP in page
    rows = list(project.pool.order_by("pk"))
    data = _form(name="Old project", pay_per_task="0.00")
    data.update({"pool-TOTAL_FORMS": "2", "pool-INITIAL_FORMS": "2"})
    for number, row in enumerate(rows):
        data.update({f"pool-{number}-id": str(row.pk), f"pool-{number}-project": str(project.pk),
                     f"pool-{number}-endpoint": str(row.endpoint_id)})  # fmt: skip
    response = admin_client.post(change_url, data)
    assert response.status_code == 302
    [warning] = _warnings(response)
    assert WARNING in warning
