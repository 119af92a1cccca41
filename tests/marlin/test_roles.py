from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse

from marlin import roles
from tests.factories import UserFactory


def test_the_migration_created_the_three_role_groups(db):
    assert set(Group.objects.values_list("name", flat=True)) >= {"contractor", "reviewer", "admin"}
    assert Group.objects.get(name="reviewer").permissions.filter(codename="review_tasks").exists()


def test_an_admin_role_user_can_open_every_admin_list(client, admin_user):
    assert not admin_user.is_superuser
    client.force_login(admin_user)
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("role", [roles.CONTRACTOR, roles.REVIEWER])
def test_other_roles_cannot_open_the_admin(client, db, role):
    client.force_login(UserFactory(role=role))
    response = client.get(reverse("admin:tasks_task_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_changing_role_moves_staff_status(db):
    user = UserFactory(role=roles.ADMIN)
    roles.user_set_role(user=user, role=roles.REVIEWER)
    user.refresh_from_db()
    assert not user.is_staff
    assert list(user.groups.values_list("name", flat=True)) == [roles.REVIEWER]
