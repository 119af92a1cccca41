"""Project middleware: what the framework does not set on its own."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import patch_cache_control


class PrivateCacheMiddleware:
    """Mark every answer to a signed-in request `Cache-Control: private, no-store`.

    A signed-in page or API answer holds one person's work (prompts, judgements, pay): no
    shared proxy may keep it and no browser may put it on disk, where the back button or
    the next user of the machine would find it after log-out.

    "Signed in" is read after the view ran, because DRF authenticates a token inside the
    view (and copies the user onto the Django request); a request that sends credentials
    counts too, even when they are refused, and so does every API answer.
    Static files never get here: WhiteNoise answers them further up, with their own caching.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if self._is_private(request):
            patch_cache_control(response, private=True, no_store=True)
        return response

    @staticmethod
    def _is_private(request: HttpRequest) -> bool:
        if "HTTP_AUTHORIZATION" in request.META or request.path_info.startswith("/api/"):
            return True
        user = getattr(request, "user", None)
        return bool(user is not None and user.is_authenticated)
