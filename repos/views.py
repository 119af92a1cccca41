from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from marlin import permissions
from marlin.exceptions import ApplicationError
from repos import selectors, services
from repos.forms import CatalogueFilterForm

PAGE_SIZE = 25


@login_required
def repository_list(request: HttpRequest) -> HttpResponse:
    form = CatalogueFilterForm(request.GET or None)
    filters = form.to_filter()
    page = selectors.CappedPaginator(
        selectors.repository_list(filters=filters), PAGE_SIZE
    ).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "query_string": query.urlencode()}
    if request.htmx:
        return render(request, "repos/_results.html", context)
    context["languages"] = selectors.repository_languages()
    return render(request, "repos/list.html", context)


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


@login_required
def repository_ref_options(request: HttpRequest) -> HttpResponse:
    """The branches and tags of the chosen repository, as <option>s for the ref field."""
    try:
        pk = int(request.GET.get("repository", ""))
    except ValueError:
        refs = {"branches": [], "tags": []}
    else:
        refs = services.repository_refs(repository=selectors.repository_get(pk=pk))
    return render(request, "repos/_ref_options.html", {"refs": refs})


@login_required
def repository_browse_ref(request: HttpRequest, pk: int) -> HttpResponse:
    """Pin a branch, tag or sha (`?ref=`, default branch if absent) and show its tree."""
    repository = selectors.repository_get(pk=pk)
    try:
        sha = services.repository_resolve_commit(
            repository=repository, ref=request.GET.get("ref", "")[:255]
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("repos:detail", pk=pk)
    # Links always name the commit, so what a person reads never shifts under them.
    return redirect("repos:browse", pk=pk, sha=sha, path="")


@login_required
def repository_browse(request: HttpRequest, pk: int, sha: str, path: str) -> HttpResponse:
    """The tree of a folder (`?page=`, BROWSE_PAGE_SIZE entries each), or one file, of the
    repository at a commit."""
    repository = selectors.repository_get(pk=pk)
    page = request.GET.get("page", "1")
    if not (page.isascii() and page.isdigit() and len(page) <= 6):
        raise Http404("The page must be a number.")
    try:
        view = services.repository_browse(
            repository=repository,
            sha=sha,
            path=path.strip("/"),
            max_bytes=settings.MARLIN_BROWSE_MAX_FILE_BYTES,
            page=int(page),
        )
    except ApplicationError as exc:
        raise Http404(exc.message) from exc
    context = {
        "repository": repository,
        "sha": sha,
        "view": view,
        "refs": services.repository_refs(repository=repository),
    }
    return render(request, "repos/browse.html", context)
