from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from marlin import permissions
from marlin.exceptions import ApplicationError
from repos import selectors, services


@login_required
def repository_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    page = Paginator(selectors.repository_list(query=query), 25).get_page(request.GET.get("page"))
    return render(request, "repos/list.html", {"page": page, "query": query})


@login_required
def repository_detail(request: HttpRequest, pk: int) -> HttpResponse:
    repository = selectors.repository_get(pk=pk)
    return render(request, "repos/detail.html", {"repository": repository})


@login_required
def repository_status(request: HttpRequest, pk: int) -> HttpResponse:
    repository = selectors.repository_get(pk=pk)
    return render(request, "repos/_clone_status.html", {"repository": repository})


@login_required
@require_POST
def repository_clone(request: HttpRequest, pk: int) -> HttpResponse:
    if not permissions.can_clone_repositories(request.user):
        raise PermissionDenied
    repository = selectors.repository_get(pk=pk)
    try:
        services.repository_queue_clone(repository=repository)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    if request.htmx:
        return render(request, "repos/_clone_status.html", {"repository": repository})
    return redirect("repos:detail", pk=pk)
