from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from marlin.exceptions import ApplicationError
from reviews import exports, selectors, services
from reviews.forms import ExportForm, ReviewForm
from tasks.diffview import attach_diff_views
from tasks.models import Task
from tasks.selectors import task_get_for_reviewer

reviewer_required = permission_required("reviews.review_tasks", raise_exception=True)


@login_required
@reviewer_required
def review_queue(request: HttpRequest) -> HttpResponse:
    return render(
        request, "reviews/queue.html", {"tasks": selectors.review_queue_for(user=request.user)}
    )


def _review_context(task: Task, form: ReviewForm | None) -> dict:
    turns = list(task.turns.all())
    attach_diff_views(c for t in turns for c in t.candidates.all())
    return {
        "task": task,
        "turns": [
            {
                "turn": turn,
                "candidates": list(turn.candidates.all()),
                "judgement": next(
                    (j for j in turn.judgements.all() if j.round == task.round), None
                ),
            }
            for turn in turns
        ],
        "reviews": list(task.reviews.all()),
        "form": form if task.status == Task.Status.SUBMITTED else None,
    }


@login_required
@reviewer_required
def review_detail(request: HttpRequest, pk: int) -> HttpResponse:
    task = task_get_for_reviewer(user=request.user, pk=pk)
    return render(request, "reviews/detail.html", _review_context(task, ReviewForm()))


@login_required
@reviewer_required
@require_POST
def review_decide(request: HttpRequest, pk: int) -> HttpResponse:
    task = task_get_for_reviewer(user=request.user, pk=pk)
    form = ReviewForm(request.POST)
    if form.is_valid():
        try:
            review = services.review_decide(
                task=task,
                reviewer=request.user,
                decision=form.cleaned_data["decision"],
                feedback=form.cleaned_data["feedback"],
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("reviews:detail", pk=pk)
        verb = "accepted" if review.decision == review.Decision.ACCEPT else "bounced"
        messages.success(request, f"Task #{task.pk} {verb}.")
        return redirect("reviews:queue")
    return render(request, "reviews/detail.html", _review_context(task, form), status=400)


@login_required
@permission_required("reviews.export_dataset", raise_exception=True)
def export(request: HttpRequest) -> HttpResponse:
    form = ExportForm(request.GET or None)
    if request.GET and form.is_valid():
        fmt = form.cleaned_data["format"]
        lines = exports.export_lines(
            fmt=fmt,
            project=form.cleaned_data["project"],
            accepted_only=not form.cleaned_data["include_unaccepted"],
        )
        content_type = "text/csv" if fmt == "csv" else "application/x-ndjson"
        response = StreamingHttpResponse(lines, content_type=content_type)
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        extension = "csv" if fmt == "csv" else "jsonl"
        response["Content-Disposition"] = f'attachment; filename="marlin-{fmt}-{stamp}.{extension}"'
        return response
    return render(request, "reviews/export.html", {"form": form or ExportForm()})
