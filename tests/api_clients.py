"""API clients signed in the way machines sign in: a knox token in `Authorization: Token`."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from rest_framework.test import APIClient

from marlin.tokens import api_token_create


def api_token_for(user: AbstractBaseUser) -> str:
    """A fresh API key for `user` (the only time the key exists outside the client)."""
    _, key = api_token_create(user=user)
    return key


def api_client_for(user: AbstractBaseUser) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_for(user)}")
    return client
