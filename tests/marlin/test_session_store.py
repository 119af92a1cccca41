"""marlin.session_store: database sessions read by one fixed statement, with Django's rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore as DjangoSessionStore
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone

from marlin import roles
from marlin.session_store import SessionStore
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_the_platform_runs_on_this_store():
    assert settings.SESSION_ENGINE == "marlin.session_store"


def test_a_session_reads_back_what_django_wrote():
    written = DjangoSessionStore()
    written["cart"] = {"task": 7, "note": "ünïcode"}
    written.create()
    read = SessionStore(written.session_key)
    assert read.load() == {"cart": {"task": 7, "note": "ünïcode"}}
    assert read.session_key == written.session_key


@pytest.mark.parametrize("store", [SessionStore, DjangoSessionStore])
def test_an_expired_or_unknown_session_is_empty_and_its_key_dropped(store):
    expired = DjangoSessionStore()
    expired["user"] = "someone"
    expired.create()
    Session.objects.filter(pk=expired.session_key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    for key in (expired.session_key, "x" * 32):
        session = store(key)
        assert session.load() == {}
        # A new key is made when it is saved: an old or guessed key is never taken over.
        assert session.session_key is None


def test_one_query_loads_the_session_and_sign_out_ends_it(client, django_assert_num_queries):
    contractor = UserFactory(role=roles.CONTRACTOR)
    client.force_login(contractor)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    store = SessionStore(key)
    with django_assert_num_queries(1):
        assert store.load()["_auth_user_id"] == str(contractor.pk)
    assert client.get(reverse("tasks:list")).status_code == 200
    client.post(reverse("logout"))
    assert SessionStore(key).load() == {}
    # The old cookie is no way back in.
    client.cookies[settings.SESSION_COOKIE_NAME] = key
    assert client.get(reverse("tasks:list")).status_code == 302
