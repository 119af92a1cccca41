"""A contractor's judging tasks: take the next pair, judge it, see what was judged."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from marlin.exceptions import ApplicationError
from reviews import quality_overlap
from reviews.models import JudgingTask
from tasks.diff_html import attach_diff_pages, layout_of
from tasks.forms import JudgementForm

contractor_required = permission_required("tasks.work_on_tasks", raise_exception=True)


@login_required
@contractor_required
def judging_list(request: HttpRequest) -> HttpResponse:
    context = {
        "judging_tasks": quality_overlap.judging_tasks_of(user=request.user).select_related(
            "turn__task__repository"
        ),
        "available": quality_overlap.judging_work_available(user=request.user),
    }
    return render(request, "reviews/judging_list.html", context)


@login_required
@contractor_required
@require_POST
def judging_next(request: HttpRequest) -> HttpResponse:
    try:
        judging_task = quality_overlap.judging_task_next(user=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("reviews:judging")
    if judging_task is None:
        messages.info(request, "There is no pair to judge right now; try again later.")
        return redirect("reviews:judging")
    return redirect("reviews:judging_detail", pk=judging_task.pk)


def _form(judging_task: JudgingTask, data=None) -> JudgementForm:
    form = JudgementForm(data, project=judging_task.project)
    # A judging task judges one turn: no follow-up prompt, no contradiction round trip.
    del form.fields["follow_up"], form.fields["confirm_warnings"]
    return form


@login_required
@contractor_required
def judging_detail(request: HttpRequest, pk: int) -> HttpResponse:
    judging_task = quality_overlap.judging_task_get_for_contractor(user=request.user, pk=pk)
    form = None
    if judging_task.status == JudgingTask.Status.TAKEN:
        form = _form(judging_task, request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                quality_overlap.judging_task_submit(
                    judging_task=judging_task, by=request.user, **form.verdict()
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, "Judgement recorded. Thank you.")
                return redirect("reviews:judging")
    shown = quality_overlap.judging_task_candidates(judging_task=judging_task)
    layout = layout_of(request)
    attach_diff_pages([shown.a, shown.b], layout=layout)
    turn = judging_task.turn
    context = {
        "diff_layout": layout,
        "judging_task": judging_task,
        "turn": turn,
        # The task's description and conversation, not its judgements or review.
        "task": turn.task,
        "earlier_prompts": list(
            turn.task.turns.filter(number__lt=turn.number).values_list("prompt", flat=True)
        ),
        "shown": [("A", shown.a), ("B", shown.b)],
        "form": form,
    }
    return render(
        request, "reviews/judging_detail.html", context, status=400 if form and form.errors else 200
    )


@login_required
@contractor_required
@require_POST
def judging_heartbeat(request: HttpRequest, pk: int) -> HttpResponse:
    """Active time on the pair: the page reports the seconds it was visible and in use."""
    judging_task = quality_overlap.judging_task_get_for_contractor(user=request.user, pk=pk)
    try:
        seconds = int(request.POST.get("seconds", "0"))
    except ValueError:
        return HttpResponse("seconds must be a whole number", status=400)
    quality_overlap.judging_task_record_activity(
        judging_task=judging_task, by=request.user, seconds=seconds
    )
    return HttpResponse(status=204)
