from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect

from marlin import health, permissions


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


# The probes run outside ATOMIC_REQUESTS: opening the request's transaction would need the
# database, and a database outage must be reported by /readyz, not turned into a 500.
@transaction.non_atomic_requests
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. Nothing else is checked, so a dependency's outage never
    gets a healthy web process restarted."""
    return HttpResponse("ok", content_type="text/plain")


@transaction.non_atomic_requests
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: database, broker and cache, each with its state and latency; 503 if one is down."""
    checks = health.readiness()
    ready = all(check.is_up for check in checks)
    return JsonResponse(
        {
            "status": "ready" if ready else "unavailable",
            "checks": {check.name: check.as_json() for check in checks},
        },
        status=200 if ready else 503,
    )
