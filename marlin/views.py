from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from marlin import permissions


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send each role to the page it starts from."""
    user = request.user
    if permissions.is_contractor(user):
        return redirect("tasks:list")
    if permissions.is_reviewer(user):
        return redirect("reviews:queue")
    if permissions.can_export(user):
        return redirect("reviews:export")
    return redirect("repos:list")


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")
