from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from marlin.exceptions import ApplicationError
from tasks import generation, selectors, services
from tasks.forms import JudgementForm, TaskCreateForm
from tasks.models import Task

contractor_required = permission_required("tasks.work_on_tasks", raise_exception=True)


@login_required
@contractor_required
def task_list(request: HttpRequest) -> HttpResponse:
    tasks = selectors.task_list_for_contractor(user=request.user)
    return render(request, "tasks/list.html", {"tasks": tasks})


@login_required
@contractor_required
def task_create(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = TaskCreateForm(request.POST)
        if form.is_valid():
            try:
                task = services.task_create(contractor=request.user, **form.cleaned_data)
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                return redirect("tasks:detail", pk=task.pk)
    else:
        form = TaskCreateForm(
            initial={"repository": request.GET.get("repository"), "ref": request.GET.get("ref")}
        )
    return render(request, "tasks/create.html", {"form": form})


def _detail_context(task: Task, form: JudgementForm | None = None) -> dict:
    turn = list(task.turns.all())[-1]
    judgements = list(turn.judgements.all())
    if form is None and task.status == Task.Status.AWAITING_PREFERENCE:
        initial = {}
        if judgements:
            # A revision starts from the previous round's judgement.
            latest = judgements[-1]
            initial = {"preference": latest.preference, "justification": latest.justification}
            for slot, axes in latest.scores.items():
                for axis, value in axes.items():
                    initial[JudgementForm.score_field(slot, axis)] = value
        form = JudgementForm(project=task.project, initial=initial)
    return {
        "task": task,
        "turn": turn,
        "candidates": list(turn.candidates.all()),
        "judgements": judgements,
        "feedback": [e for e in task.events.all() if e.to_status == Task.Status.BOUNCED],
        "form": form,
    }


@login_required
@contractor_required
def task_detail(request: HttpRequest, pk: int) -> HttpResponse:
    task = selectors.task_get_for_contractor(user=request.user, pk=pk)
    return render(request, "tasks/detail.html", _detail_context(task))


@login_required
@contractor_required
def task_candidates(request: HttpRequest, pk: int) -> HttpResponse:
    """The live progress fragment; once generation is over the page reloads to show the work."""
    task = selectors.task_get_for_contractor(user=request.user, pk=pk)
    response = render(request, "tasks/_candidates.html", _detail_context(task))
    if request.htmx and task.status != Task.Status.GENERATING:
        response["HX-Refresh"] = "true"
    return response


@login_required
@contractor_required
@require_POST
def task_submit(request: HttpRequest, pk: int) -> HttpResponse:
    task = selectors.task_get_for_contractor(user=request.user, pk=pk)
    form = JudgementForm(request.POST, project=task.project)
    if form.is_valid():
        try:
            services.task_submit(
                task=task,
                by=request.user,
                preference=form.cleaned_data["preference"],
                scores=form.scores(),
                justification=form.cleaned_data["justification"],
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Submitted for review.")
            return redirect("tasks:detail", pk=pk)
    return render(request, "tasks/detail.html", _detail_context(task, form), status=400)


@login_required
@contractor_required
@require_POST
def task_revise(request: HttpRequest, pk: int) -> HttpResponse:
    task = selectors.task_get_for_contractor(user=request.user, pk=pk)
    try:
        services.task_revise(task=task, by=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("tasks:detail", pk=pk)


@login_required
@contractor_required
@require_POST
def candidate_retry(request: HttpRequest, pk: int) -> HttpResponse:
    candidate = selectors.candidate_get_for_contractor(user=request.user, pk=pk)
    try:
        generation.candidate_retry(candidate=candidate, by=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("tasks:detail", pk=candidate.turn.task_id)
