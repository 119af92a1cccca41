"""API tokens (django-rest-knox) and the brake on guessing them; the one module importing knox.

A token is shown once, when it is made; the database keeps only its SHA-512 digest (and the
first 15 characters, knox's lookup key), so neither a database dump nor the admin can replay
it. Tokens expire after `MARLIN_API_TOKEN_TTL_HOURS` and die with a password change.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.cache import cache
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from rest_framework.authentication import get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.request import Request

from marlin.addresses import client_ip

logger = logging.getLogger(__name__)

__all__ = ["ApiTokenAuthentication", "AuthToken", "api_token_create", "api_tokens_revoke"]

_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def api_token_create(*, user: AbstractBaseUser) -> tuple[AuthToken, str]:
    """Make a token for `user`; returns the row and the key, which exists nowhere else.

    The expiry is computed here from the setting at call time (knox binds its own default
    when the module is imported, so a changed setting would otherwise need a restart).
    """
    return AuthToken.objects.create(
        user=user, expiry=timedelta(hours=settings.MARLIN_API_TOKEN_TTL_HOURS)
    )


def api_tokens_revoke(*, user: AbstractBaseUser) -> int:
    """Delete every API token of `user`; returns how many there were."""
    deleted, _ = AuthToken.objects.filter(user=user).delete()
    return deleted


def on_user_pre_save(
    sender: type[AbstractBaseUser],
    instance: AbstractBaseUser,
    raw: bool = False,
    update_fields: frozenset[str] | None = None,
    **kwargs: Any,
) -> None:
    """Revoke a user's tokens when their password hash changes (or becomes unusable).

    Why a pre_save receiver rather than a service called where passwords change (STYLE 2.5):
    here passwords change in the Django admin (stock UserAdmin), in Django's `changepassword`
    command (which marlin cannot override: django.contrib.auth precedes it in INSTALLED_APPS),
    in `demo_setup` and in a shell. A call site forgotten is a stolen token that outlives the
    password reset meant to kill it; the save of the hash is the one place all paths share,
    the same way Django itself ends sessions by comparing against the hash.
    """
    if raw or instance._state.adding or instance.pk is None:
        return
    if update_fields is not None and "password" not in update_fields:
        return  # e.g. last_login on every sign-in: no extra query
    old = type(instance).objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if old is None or old == instance.password:
        return
    # Django re-hashes a password on login when the hasher's cost goes up and marks that save
    # with _password = None ("hash upgrades shouldn't be considered password changes").
    if update_fields == frozenset({"password"}) and getattr(instance, "_password", "") is None:
        return
    api_tokens_revoke(user=instance)


def _parse_rate(rate: str) -> tuple[int, int]:
    count, period = rate.split("/")
    return int(count), _PERIOD_SECONDS[period[0]]


def _failures_key(address: str, window: int) -> str:
    return f"api-auth-failures:{address}:{window}"


def _failures_window() -> tuple[int, int, int]:
    """(allowed failures, window length in seconds, current window number)."""
    allowed, seconds = _parse_rate(settings.MARLIN_API_AUTH_FAILURES_RATE)
    return allowed, seconds, int(time.time() // seconds)


def _failures_wait(address: str) -> float | None:
    """Seconds until `address` may try a token again, or None if it may now."""
    allowed, seconds, window = _failures_window()
    try:
        failures = cache.get(_failures_key(address, window), 0)
    except Exception:  # the cache is a brake, not a gate: fail open and say so
        logger.warning("auth-failure throttle: cache unavailable, not throttling", exc_info=True)
        return None
    if failures < allowed:
        return None
    return (window + 1) * seconds - time.time()


def _failure_record(address: str) -> None:
    _, seconds, window = _failures_window()
    key = _failures_key(address, window)
    try:
        cache.add(key, 0, timeout=seconds + 1)
        cache.incr(key)
    except Exception:
        logger.warning("auth-failure throttle: cache unavailable, not counting", exc_info=True)


class ApiTokenAuthentication(TokenAuthentication):
    """knox's `Authorization: Token <key>`, refusing addresses that keep presenting bad keys.

    After `MARLIN_API_AUTH_FAILURES_RATE` failures in a window, an address gets 429 for any
    token until the window ends, before the key is even looked at: refusing only the wrong
    keys would still tell a guesser when one was right. Missing or non-Token headers are not
    counted (they fall through to session auth and a plain 401/403).
    """

    def authenticate(self, request: Request) -> tuple[Any, AuthToken] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.authenticate_header(request).encode().lower():
            return None
        address = client_ip(request) or "unknown"
        wait = _failures_wait(address)
        if wait is not None:
            raise Throttled(
                wait=wait, detail="Too many failed token authentications from this address."
            )
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            _failure_record(address)
            raise


def api_auth_failures_forget(address: str) -> None:
    """Clear the current window's failure count for `address` (tests, or an operator)."""
    _, _, window = _failures_window()
    cache.delete(_failures_key(address, window))


class ApiTokenScheme(KnoxTokenScheme):
    """The OpenAPI security scheme of our subclass (drf-spectacular matches classes exactly)."""

    target_class = "marlin.tokens.ApiTokenAuthentication"
    name = "tokenAuth"
