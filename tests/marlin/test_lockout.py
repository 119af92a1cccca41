"""Login lockout (django-axes): after MARLIN_LOGIN_FAILURE_LIMIT wrong passwords for a username, or
from an address, even the right password is refused until the cool-off ends."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

PASSWORD = "correct horse battery staple"
LOCKED = "Too many failed logins"


def _login(username: str, password: str, *, url: str = "/login/", address: str = "127.0.0.1"):
    return Client(REMOTE_ADDR=address).post(url, {"username": username, "password": password})


def _signed_in(response) -> bool:
    return response.status_code == 302 and "sessionid" in response.cookies


@pytest.fixture
def start():
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


def test_the_sixth_attempt_is_refused_even_with_the_right_password(start, contractor):
    for _ in range(4):
        response = _login(contractor.username, "wrong")
        # Answered normally: the form says the password is wrong.
        assert response.status_code == 200 and LOCKED not in response.content.decode()
    # The fifth failure reaches the limit (5) and is answered with the lockout page.
    assert _login(contractor.username, "wrong").status_code == 429
    response = _login(contractor.username, PASSWORD)
    assert response.status_code == 429
    page = response.content.decode()
    assert LOCKED in page and "after 5 wrong passwords" in page and "0:30:00" in page
    assert not _signed_in(response)


def test_the_lock_lifts_after_the_cool_off(start, contractor):
    for _ in range(5):
        _login(contractor.username, "wrong")
    start.shift(timedelta(minutes=29))
    assert _login(contractor.username, PASSWORD).status_code == 429
    start.shift(timedelta(minutes=1, seconds=1))
    assert _signed_in(_login(contractor.username, PASSWORD))


def test_the_limit_and_cool_off_come_from_the_settings(start, settings, contractor):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=3)
    _login(contractor.username, "wrong")
    assert _login(contractor.username, "wrong").status_code == 429
    start.shift(timedelta(minutes=3, seconds=1))
    assert _signed_in(_login(contractor.username, PASSWORD))


def test_a_username_is_locked_whatever_the_address(start, contractor):
    for n in range(5):
        _login(contractor.username, "wrong", address=f"198.51.100.{n + 1}")
    assert _login(contractor.username, PASSWORD, address="198.51.100.99").status_code == 429


def test_an_address_is_locked_whatever_the_username(start, contractor):
    for n in range(5):
        _login(f"nobody{n}", "wrong", address="198.51.100.5")
    assert _login(contractor.username, PASSWORD, address="198.51.100.5").status_code == 429
    # The same person from elsewhere is not locked.
    assert _signed_in(_login(contractor.username, PASSWORD, address="198.51.100.6"))


def test_a_success_before_the_limit_starts_the_count_again(start, contractor):
    for _ in range(4):
        _login(contractor.username, "wrong")
    assert _signed_in(_login(contractor.username, PASSWORD))
    for _ in range(4):
        assert _login(contractor.username, "wrong").status_code == 200


def test_the_admin_login_is_locked_too(start, admin_user):
    url = reverse("admin:login")
    for _ in range(5):
        _login(admin_user.username, "wrong", url=url)
    response = _login(admin_user.username, PASSWORD, url=url)
    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert not _signed_in(response)


def test_an_admin_lifts_a_lock_by_deleting_the_attempts(start, admin_user, contractor):
    from axes.models import AccessAttempt

    for _ in range(5):
        _login(contractor.username, "wrong", address="198.51.100.7")
    client = Client()
    client.force_login(admin_user)
    attempts = AccessAttempt.objects.filter(username=contractor.username)
    assert client.get(reverse("admin:axes_accessattempt_changelist")).status_code == 200
    client.post(
        reverse("admin:axes_accessattempt_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": list(attempts.values_list("pk", flat=True)),
            "post": "yes",
        },
    )
    assert _signed_in(_login(contractor.username, PASSWORD, address="198.51.100.8"))


def test_a_forged_forwarded_for_does_not_reset_the_count(start, settings, contractor):
    # Behind one proxy, only the entry our proxy appended (the last) is believed.
    settings.MARLIN_TRUSTED_PROXY_COUNT = 1

    def attempt(username: str, password: str, forged: str):
        client = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=f"{forged}, 198.51.100.9")
        return client.post("/login/", {"username": username, "password": password})

    for n in range(5):
        attempt(f"nobody{n}", "wrong", forged=f"192.0.2.{n}")
    assert attempt(contractor.username, PASSWORD, forged="192.0.2.77").status_code == 429
    # A different real client behind the same proxy is not locked.
    client = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.10")
    response = client.post("/login/", {"username": contractor.username, "password": PASSWORD})
    assert _signed_in(response)
