"""The page endpoints the line-comment script calls (JSON in, JSON out)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_POST

from marlin.exceptions import ApplicationError
from reviews import comment_services
from reviews.comment_forms import LineCommentForm
from reviews.comment_selectors import line_comment_data
from reviews.models import LineComment
from tasks.selectors import candidate_get_for_viewer


def _refused(exc: ApplicationError) -> JsonResponse:
    return JsonResponse({"detail": exc.message}, status=exc.status_code)


@login_required
@require_POST
def line_comment_add(request: HttpRequest, pk: int) -> JsonResponse:
    """Comment on a line of candidate `pk`: 201 with the comment, or 4xx with "detail"."""
    candidate = candidate_get_for_viewer(user=request.user, pk=pk)
    form = LineCommentForm(request.POST)
    if not form.is_valid():
        first = next(iter(form.errors.items()))
        return JsonResponse({"detail": f"{first[0]}: {first[1][0]}"}, status=400)
    try:
        comment = comment_services.line_comment_add(
            candidate=candidate, by=request.user, **form.comment_input()
        )
    except ApplicationError as exc:
        return _refused(exc)
    return JsonResponse(
        line_comment_data(comment, viewer=request.user, can_delete=True), status=201
    )


@login_required
@require_POST
def line_comment_delete(request: HttpRequest, pk: int) -> JsonResponse:
    """Delete one's own comment `pk`: 200, or 4xx with "detail"; 404 for a stranger's task."""
    comment = get_object_or_404(LineComment.objects.select_related("candidate"), pk=pk)
    # Seen through its candidate, so an outsider learns nothing, not even that it exists.
    candidate_get_for_viewer(user=request.user, pk=comment.candidate_id)
    try:
        comment_services.line_comment_delete(comment=comment, by=request.user)
    except ApplicationError as exc:
        return _refused(exc)
    return JsonResponse({"deleted": pk})
