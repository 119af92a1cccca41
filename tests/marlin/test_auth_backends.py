"""marlin.auth_backends: a user's permissions in one query, with ModelBackend's answers."""

from __future__ import annotations

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser, Permission, User
from django.urls import reverse

from marlin import roles
from marlin.auth_backends import OneQueryModelBackend
from tests.factories import UserFactory


def _fresh(user: User) -> User:
    """The user as a new request loads it: no permission cached yet."""
    return User.objects.get(pk=user.pk)


@pytest.fixture
def people(db):
    direct = UserFactory(role=roles.CONTRACTOR)
    direct.user_permissions.add(Permission.objects.get(codename="export_dataset"))
    inactive = UserFactory(role=roles.REVIEWER)
    inactive.is_active = False
    inactive.save()
    return {
        "contractor": UserFactory(role=roles.CONTRACTOR),
        "reviewer": UserFactory(role=roles.REVIEWER),
        "admin": UserFactory(role=roles.ADMIN),
        "contractor with a permission of their own": direct,
        "inactive reviewer": inactive,
        "superuser": UserFactory(is_superuser=True),
        "no role": UserFactory(),
    }


def test_the_permissions_are_modelbackends_for_every_kind_of_user(people):
    for name, user in people.items():
        ours = OneQueryModelBackend().get_all_permissions(_fresh(user))
        theirs = ModelBackend().get_all_permissions(_fresh(user))
        assert ours == theirs, name
    assert "reviews.export_dataset" in OneQueryModelBackend().get_all_permissions(
        _fresh(people["contractor with a permission of their own"])
    )
    assert OneQueryModelBackend().get_all_permissions(_fresh(people["inactive reviewer"])) == set()
    assert OneQueryModelBackend().get_all_permissions(AnonymousUser()) == set()
    everything = Permission.objects.count()
    assert (
        len(OneQueryModelBackend().get_all_permissions(_fresh(people["superuser"]))) == everything
    )


def test_a_request_checks_any_number_of_permissions_for_one_query(
    people, django_assert_num_queries
):
    reviewer = _fresh(people["reviewer"])
    with django_assert_num_queries(1):
        assert reviewer.has_perm("reviews.review_tasks")
        assert not reviewer.has_perm("tasks.work_on_tasks")  # ModelBackend asked too: cached
        assert not reviewer.has_perm("reviews.export_dataset")
        assert reviewer.has_perms(["reviews.review_tasks"])


def test_object_permissions_are_not_granted(people):
    task_perm = "reviews.review_tasks"
    assert not OneQueryModelBackend().has_perm(_fresh(people["reviewer"]), task_perm, obj=object())


@pytest.mark.parametrize(
    "backend",
    ["marlin.auth_backends.OneQueryModelBackend", "django.contrib.auth.backends.ModelBackend"],
)
def test_sessions_signed_in_under_either_backend_stay_valid(client, people, backend):
    """Sessions made before the switch name ModelBackend; they must not be logged out."""
    client.force_login(people["contractor"], backend=backend)
    assert client.get(reverse("tasks:list")).status_code == 200
    client.force_login(people["reviewer"], backend=backend)
    assert client.get(reverse("tasks:list")).status_code == 403


def test_signing_in_is_modelbackends_alone(client, people):
    """A failed sign-in hashes the password once (one backend checks it), and sessions keep
    naming ModelBackend, as they did before OneQueryModelBackend."""
    user = people["contractor"]
    user.set_password("a long enough secret")
    user.save()
    assert (
        OneQueryModelBackend().authenticate(
            None, username=user.username, password="a long enough secret"
        )
        is None
    )
    response = client.post(
        reverse("login"), {"username": user.username, "password": "a long enough secret"}
    )
    assert response.status_code == 302
    assert client.session[BACKEND_SESSION_KEY] == "django.contrib.auth.backends.ModelBackend"
    assert client.get(reverse("tasks:list")).status_code == 200
