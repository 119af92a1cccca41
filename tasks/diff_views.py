"""The diff tools' endpoints: the diff with whitespace hidden, unchanged lines around hunks,
and the direct A vs B diff of a turn. Each is a fragment of the workspace and review pages,
seen by whoever may see the candidates (tasks.selectors.candidate_get_for_diff).
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from marlin.exceptions import ApplicationError
from tasks import selectors
from tasks.ab_diff import turn_ab_diff
from tasks.diff_html import candidate_diff_file, candidate_diff_page, layout_of
from tasks.diffview import candidate_diff_view, context_rows
from tasks.models import Turn


def _hides_whitespace(request: HttpRequest) -> bool:
    return request.GET.get("whitespace") == "hide"


def _browse_base(task) -> str:
    return reverse("repos:browse", args=[task.repository_id, task.commit_sha, ""])


def _bad_request(message: str) -> HttpResponse:
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")


@login_required
@require_GET
def candidate_diff(request: HttpRequest, pk: int) -> HttpResponse:
    """A candidate's diff view (or one file of it with ?file=n) in the layout asked for
    (?layout=, else the toggle's cookie), whitespace hidden on ask."""
    candidate = selectors.candidate_get_for_diff(user=request.user, pk=pk)
    layout = layout_of(request)
    hide = _hides_whitespace(request)
    if "file" in request.GET:
        number = request.GET["file"]
        found = None
        if number.isdigit() and len(number) < 10:
            found = candidate_diff_file(
                candidate, number=int(number), layout=layout, ignore_whitespace=hide
            )
        if found is None:
            raise Http404("No such file in this change.")
        return HttpResponse(found[1])
    context = {
        "view": candidate_diff_page(candidate, layout=layout, ignore_whitespace=hide),
        "slot": candidate.slot,
        "candidate_id": candidate.pk,
        "browse_base": _browse_base(candidate.turn.task),
    }
    return render(request, "tasks/_diff.html", context)


@login_required
@require_GET
def candidate_context(request: HttpRequest, pk: int) -> HttpResponse:
    """Unchanged lines start..end of a changed file, from the pinned commit, as table rows."""
    candidate = selectors.candidate_get_for_diff(user=request.user, pk=pk)
    params = {name: request.GET.get(name, "") for name in ("file", "start", "end")}
    if not all(value.isdigit() and len(value) < 10 for value in params.values()):
        return _bad_request("file, start and end must be whole numbers.")
    if request.GET.get("side", "old") != "old":
        return _bad_request("Only the old side's lines can be shown (side=old).")
    view = candidate_diff_view(candidate, ignore_whitespace=_hides_whitespace(request))
    number, start, end = (int(params[name]) for name in ("file", "start", "end"))
    if number >= len(view.files):
        return _bad_request("This change has no such file.")
    file = view.files[number]
    try:
        rows = context_rows(candidate=candidate, file=file, start=start, end=end)
    except ApplicationError as exc:  # a range outside the gaps, or an unreadable file
        return _bad_request(exc.message)
    return render(request, "tasks/_diff_context_rows.html", {"rows": rows, "a": file.anchor})


@login_required
@require_GET
def turn_ab_diff_view(request: HttpRequest, turn_pk: int) -> HttpResponse:
    """The direct diff of a turn's two results (A's as the old side, B's as the new)."""
    turn = get_object_or_404(Turn.objects.select_related("task__repository"), pk=turn_pk)
    # Each candidate through the viewer selector: outsiders get a 404, as for a candidate.
    # Not for judging tasks: their slots may be swapped, and this diff is in the turn's.
    candidates = [
        selectors.candidate_get_for_viewer(user=request.user, pk=pk)
        for pk in turn.candidates.order_by("slot").values_list("pk", flat=True)
    ]
    if not candidates:
        raise Http404("This turn has no candidates.")
    hide = _hides_whitespace(request)
    result = turn_ab_diff(
        turn=turn, candidates=candidates, ignore_whitespace=hide, layout=layout_of(request)
    )
    context = {"turn": turn, "ab": result, "hides_whitespace": hide}
    return render(request, "tasks/_ab_diff_body.html", context)
