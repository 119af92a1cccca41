from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
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
    """Pin a branch, tag or sha (`?ref=`, default branch if absent) and show its tree, at the
    same `?path=` when the new commit has it."""
    repository = selectors.repository_get(pk=pk)
    ref = request.GET.get("ref", "").strip()[:255]
    try:
        switch = services.repository_switch_ref(
            repository=repository, ref=ref, path=request.GET.get("path", "")[:4096]
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("repos:detail", pk=pk)
    if switch.note:
        messages.info(request, switch.note)
    # Links always name the commit, so what a person reads never shifts under them; the
    # branch or tag chosen rides along so the page can show it as chosen.
    url = reverse("repos:browse", args=[pk, switch.sha, switch.path])
    if ref and ref != switch.sha and ref != repository.default_branch:
        url += "?" + urlencode({"ref": ref})
    return redirect(url)


@login_required
def repository_browse(request: HttpRequest, pk: int, sha: str, path: str) -> HttpResponse:
    """The tree of a folder (`?page=`, BROWSE_PAGE_SIZE entries each), or one file, of the
    repository at a commit; `?ref=` names the branch or tag it was reached by."""
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
    refs = services.repository_refs(repository=repository)
    current_ref = services.repository_ref_label(
        repository=repository, ref=request.GET.get("ref", "")[:255], sha=sha, refs=refs
    )
    context = {
        "repository": repository,
        "sha": sha,
        "view": view,
        "refs": refs,
        "current_ref": current_ref,
        # Carried on every link of the page, so moving between folders keeps the ref shown.
        "ref_query": urlencode({"ref": current_ref})
        if current_ref and current_ref != repository.default_branch
        else "",
    }
    return render(request, "repos/browse.html", context)
