"""The client's address, trusting X-Forwarded-For only as far as our own proxies wrote it."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The address that reached the first of our `MARLIN_TRUSTED_PROXY_COUNT` proxies.

    Each trusted proxy appends the address it saw to X-Forwarded-For, so the entry N from the
    right is the one our outermost proxy wrote; everything left of it came from the client and
    can be forged. With no proxy trusted (or no header), the socket's address is used (None
    when there is none, as for a test client's force_login). Login
    lockout and the API's auth-failure throttle both key on this, so a forged header must not
    buy an attacker a fresh count.
    """
    remote = request.META.get("REMOTE_ADDR") or None
    trusted = settings.MARLIN_TRUSTED_PROXY_COUNT
    if trusted <= 0:
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    hops = [h for h in hops if h]
    if not hops:
        return remote
    return hops[-min(trusted, len(hops))]
