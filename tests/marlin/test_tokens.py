"""API tokens: hashed at rest, shown once, expiring, dying with the password, revocable by admins;
and a flood of bad keys from one address is throttled."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from marlin.tokens import AuthToken, api_auth_failures_forget
from tests.api_clients import api_token_for
from tests.factories import UserFactory

PASSWORD = "correct horse battery staple"
FLOOD_ADDRESS = "203.0.113.7"  # TEST-NET-3: no other test presents keys from it


def _get_tasks(key: str, *, address: str = "127.0.0.1"):
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get(reverse("api-tasks"))


def _create_token_by_command(username: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", username, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def test_the_command_prints_a_key_that_is_stored_only_as_a_digest(contractor):
    key, note = _create_token_by_command(contractor.username)
    assert "will not be shown again" in note
    assert _get_tasks(key).status_code == 200
    token = AuthToken.objects.get(user=contractor)
    # A dump of the table cannot be replayed: no column holds the key.
    row = AuthToken.objects.filter(pk=token.pk).values().get()
    assert all(key not in str(value) for value in row.values())
    assert token.digest == hashlib.sha512(key.encode()).hexdigest()
    # DRF's old plain-text table is gone altogether.
    assert "authtoken_token" not in connection.introspection.table_names()


def test_each_run_of_the_command_makes_a_new_key(contractor):
    first, _ = _create_token_by_command(contractor.username)
    second, _ = _create_token_by_command(contractor.username)
    assert first != second
    assert AuthToken.objects.filter(user=contractor).count() == 2


def test_a_token_expires_after_the_configured_lifetime(settings, contractor):
    settings.MARLIN_API_TOKEN_TTL_HOURS = 2
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        key = api_token_for(contractor)
        assert AuthToken.objects.get(user=contractor).expiry == start + timedelta(hours=2)
    with time_machine.travel(start + timedelta(hours=1, minutes=59), tick=False):
        assert _get_tasks(key).status_code == 200
    with time_machine.travel(start + timedelta(hours=2, seconds=1), tick=False):
        response = _get_tasks(key)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_a_token_replayed_after_a_password_change_is_refused(contractor):
    key = api_token_for(contractor)
    assert _get_tasks(key).status_code == 200
    # As `manage.py changepassword` does it.
    contractor.set_password("a brand new passphrase")
    contractor.save()
    response = _get_tasks(key)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}
    assert not AuthToken.objects.filter(user=contractor).exists()


def test_a_password_set_in_the_django_admin_revokes_the_tokens(contractor):
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    key = api_token_for(contractor)
    client = Client()
    client.force_login(superuser)
    response = client.post(
        reverse("admin:auth_user_password_change", args=[contractor.pk]),
        {"password1": "another long passphrase", "password2": "another long passphrase"},
    )
    assert response.status_code == 302
    assert _get_tasks(key).status_code == 401


def test_signing_in_or_editing_the_profile_keeps_the_tokens(contractor):
    key = api_token_for(contractor)
    # A sign-in saves last_login; only the password hash matters.
    assert (
        Client()
        .post(reverse("login"), {"username": contractor.username, "password": PASSWORD})
        .status_code
        == 302
    )
    contractor.first_name = "Carol"
    contractor.save()
    assert _get_tasks(key).status_code == 200


def test_other_users_tokens_survive_a_password_change(contractor, other_contractor):
    mine, theirs = api_token_for(contractor), api_token_for(other_contractor)
    contractor.set_password("a brand new passphrase")
    contractor.save()
    assert _get_tasks(mine).status_code == 401
    assert _get_tasks(theirs).status_code == 200


def test_the_admin_lists_tokens_without_any_usable_key(admin_user, contractor):
    key = api_token_for(contractor)
    token = AuthToken.objects.get(user=contractor)
    client = Client()
    client.force_login(admin_user)
    listing = client.get(reverse("admin:knox_authtoken_changelist"))
    assert listing.status_code == 200
    page = listing.content.decode()
    assert contractor.username in page and token.digest[:8] in page
    # Neither the key nor knox's lookup prefix of it is on the page. The digest is (it is the
    # row's primary key, in links), but a one-way hash cannot be presented as a key.
    assert key not in page and token.token_key not in page
    assert _get_tasks(token.digest).status_code == 401
    detail = client.get(reverse("admin:knox_authtoken_change", args=[token.pk]))
    assert detail.status_code == 200
    assert key not in detail.content.decode() and token.token_key not in detail.content.decode()
    # Nobody can make or edit a token there: a key is shown once, by the command.
    assert client.get(reverse("admin:knox_authtoken_add")).status_code == 403


def test_an_admin_revokes_a_token(admin_user, contractor):
    key = api_token_for(contractor)
    kept = api_token_for(contractor)
    token = AuthToken.objects.get(digest=hashlib.sha512(key.encode()).hexdigest())
    client = Client()
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:knox_authtoken_changelist"),
        {"action": "delete_selected", "_selected_action": [token.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert _get_tasks(key).status_code == 401
    # Only the chosen token: the user's other one still works.
    assert _get_tasks(kept).status_code == 200


def test_people_without_the_admin_role_cannot_see_tokens(contractor):
    api_token_for(contractor)
    staff_without_role = UserFactory(username="sam", is_staff=True)
    client = Client()
    client.force_login(staff_without_role)
    assert client.get(reverse("admin:knox_authtoken_changelist")).status_code == 403


@pytest.fixture
def flood(settings):
    settings.MARLIN_API_AUTH_FAILURES_RATE = "5/min"
    with time_machine.travel(timezone.now().replace(second=10), tick=False) as traveller:
        api_auth_failures_forget(FLOOD_ADDRESS)
        yield traveller
        api_auth_failures_forget(FLOOD_ADDRESS)


def test_a_flood_of_bad_keys_is_throttled(flood, contractor):
    good = api_token_for(contractor)
    for _ in range(5):
        assert _get_tasks("not-a-real-key", address=FLOOD_ADDRESS).status_code == 401
    response = _get_tasks("not-a-real-key", address=FLOOD_ADDRESS)
    assert response.status_code == 429
    assert "Too many failed token authentications" in response.json()["detail"]
    assert int(response["Retry-After"]) <= 60
    # Even the right key is refused from there, or the 429 would tell a guesser when he hit.
    assert _get_tasks(good, address=FLOOD_ADDRESS).status_code == 429
    # Other addresses are not affected.
    assert _get_tasks(good, address="198.51.100.1").status_code == 200
    # The next window lets the address try again.
    flood.shift(60)
    assert _get_tasks(good, address=FLOOD_ADDRESS).status_code == 200


def test_valid_keys_and_missing_headers_are_not_counted(flood, contractor):
    good = api_token_for(contractor)
    for _ in range(10):
        assert _get_tasks(good, address=FLOOD_ADDRESS).status_code == 200
        assert APIClient(REMOTE_ADDR=FLOOD_ADDRESS).get(reverse("api-tasks")).status_code == 401
    assert _get_tasks("not-a-real-key", address=FLOOD_ADDRESS).status_code == 401


def test_the_throttle_fails_open_when_the_cache_is_down(flood, contractor, monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    for name in ("get", "add", "incr"):
        monkeypatch.setattr(cache, name, down)
    for _ in range(7):
        assert _get_tasks("not-a-real-key", address=FLOOD_ADDRESS).status_code == 401
    assert _get_tasks(api_token_for(contractor), address=FLOOD_ADDRESS).status_code == 200
