from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from marlin import health
from marlin.exceptions import ApplicationError, ConflictError
from reviews import selectors as review_selectors
from reviews.comment_selectors import line_comments_page_context
from tasks import evidence_services, generation_services, selectors, services
from tasks.diff_html import Layout, attach_diff_pages, layout_of
from tasks.diff_html import candidate_diff_file as candidate_diff_file_html
from tasks.focus_files import FocusFilesError
from tasks.forms import JudgementForm, TaskCreateForm
from tasks.models import Candidate, Task

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
            except FocusFilesError as exc:
                form.add_error("focus_files", exc.message)
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                return redirect("tasks:detail", pk=task.pk)
    else:
        form = TaskCreateForm(
            initial={"repository": request.GET.get("repository"), "ref": request.GET.get("ref")}
        )
    return render(request, "tasks/create.html", {"form": form, "project": form.chosen_project()})


@login_required
@contractor_required
def project_guidelines(request: HttpRequest) -> HttpResponse:
    """The guidelines of the project chosen in the new-task form (htmx swaps them in)."""
    form = TaskCreateForm(initial={"project": request.GET.get("project")})
    return render(request, "tasks/_project_guidelines.html", {"project": form.chosen_project()})


def _judgement_of(turn, review_round: int):
    """The judgement of `turn` for the round, else the latest earlier one (for display)."""
    rows = sorted(turn.judgements.all(), key=lambda j: j.round)
    same = [j for j in rows if j.round == review_round]
    return same[-1] if same else (rows[-1] if rows else None)


def _review_feedback(task: Task) -> dict:
    """The last bounce's feedback, shown where it applies while the contractor revises."""
    review = review_selectors.review_latest_bounce(task=task)
    return {
        "review": review,
        "review_notes": review_selectors.review_notes_by_anchor(review=review),
    }


def _draft_of(turn, review_round: int):
    return next((d for d in turn.drafts.all() if d.round == review_round), None)


def _earlier_form(task: Task, turn, data=None) -> JudgementForm:
    """An earlier turn's judgement, editable while revising; its fields are prefixed
    "turn<N>-" and belong to the latest turn's form, so one submit saves them all."""
    initial = JudgementForm.initial_from(
        judgement=_judgement_of(turn, task.round), draft=_draft_of(turn, task.round)
    )
    return JudgementForm(
        data,
        project=task.project,
        prefix=f"turn{turn.number}",
        form_id="judgement",
        identical=bool(turn.has_identical_candidates),
        initial=initial,
    )


def _is_revising(task: Task) -> bool:
    return task.status == Task.Status.AWAITING_PREFERENCE and task.round > 1


def _detail_context(
    task: Task,
    viewer,
    form: JudgementForm | None = None,
    warnings: list[str] | None = None,
    earlier_forms: dict[int, JudgementForm] | None = None,
    *,
    layout: Layout = "unified",
) -> dict:
    turns = list(task.turns.all())
    latest = turns[-1]
    judgement = _judgement_of(latest, task.round)
    if form is None and task.status == Task.Status.AWAITING_PREFERENCE:
        form = JudgementForm(
            project=task.project,
            identical=bool(latest.has_identical_candidates),
            initial=JudgementForm.initial_from(
                judgement=judgement, draft=_draft_of(latest, task.round)
            ),
        )
    earlier_forms = earlier_forms or {}
    if _is_revising(task):
        for turn in turns[:-1]:
            earlier_forms.setdefault(turn.number, _earlier_form(task, turn))
    attach_diff_pages((c for t in turns for c in t.candidates.all()), layout=layout)
    selectors.attach_evidence_views(task=task, viewer=viewer)
    return {
        "task": task,
        "diff_layout": layout,
        "turn": latest,
        "candidates": list(latest.candidates.all()),
        "judgement": judgement,
        "earlier_turns": [
            {
                "turn": t,
                "candidates": list(t.candidates.all()),
                "judgement": _judgement_of(t, task.round),
                "form": earlier_forms.get(t.number),
            }
            for t in turns[:-1]
        ],
        "can_follow_up": latest.number < task.project.max_turns,
        "needs_more_turns": task.needs_more_turns(turns=len(turns)),
        "can_regenerate": (
            task.status == Task.Status.AWAITING_PREFERENCE
            and bool(latest.has_identical_candidates)
            and not any(j.round < task.round for j in latest.judgements.all())
        ),
        **_review_feedback(task),
        **line_comments_page_context(
            task=task, viewer=viewer, candidates=(c for t in turns for c in t.candidates.all())
        ),
        "timeline": review_selectors.task_timeline(task=task, viewer=viewer),
        "jobs_delayed": health.jobs_delayed(
            waiting=any(c.status == Candidate.Status.QUEUED for c in latest.candidates.all())
        ),
        "form": form,
        "warnings": warnings or [],
        "evidence_can_retry": True,
    }


@login_required
@contractor_required
def task_detail(request: HttpRequest, pk: int) -> HttpResponse:
    task = selectors.task_get_for_contractor(user=request.user, pk=pk)
    return render(
        request, "tasks/detail.html", _detail_context(task, request.user, layout=layout_of(request))
    )


@login_required
@contractor_required
def task_candidates(request: HttpRequest, pk: int) -> HttpResponse:
    """The live progress fragment; once generation is over the page reloads to show the work."""
    task = selectors.task_get_for_contractor(user=request.user, pk=pk)
    response = render(
        request,
        "tasks/_candidates.html",
        _detail_context(task, request.user, layout=layout_of(request)),
    )
    if request.htmx and task.status != Task.Status.GENERATING:
        response["HX-Refresh"] = "true"
    return response


def _message_pending(request: HttpRequest, text: str) -> bool:
    """Whether `text` already waits to be shown on the next page.

    A replayed submit (the second click of a double click) changed nothing, so it must not
    announce a second submission; but when the browser dropped the first click's answer, its
    message never arrived and this answer is the only one the contractor sees. Reading the
    storage marks it used; `used = False` keeps it for the next page (Django's documented way).
    """
    storage = messages.get_messages(request)
    pending = any(message.message == text for message in storage)
    storage.used = False
    return pending


@login_required
@contractor_required
@require_POST
def task_submit(request: HttpRequest, pk: int) -> HttpResponse:
    """Judge the latest turn, then either submit the task or send a follow-up prompt."""
    # The task and its project only: the service reads what it needs under the task's lock.
    # The whole task (every candidate's diff) is read only to show the page again.
    task = selectors.task_get_for_judging(user=request.user, pk=pk, latest_turn=True)
    identical = bool(task.latest_turn_identical)
    turns = []
    if _is_revising(task):
        # The earlier turns' forms start from their judgements and drafts.
        task = selectors.task_get_for_contractor(user=request.user, pk=pk)
        turns = list(task.turns.all())
    data = request.POST.copy()
    # Only the "... anyway" buttons (formaction with ?confirm=1) confirm shown warnings; a
    # later plain submit with a new contradiction is asked again.
    data["confirm_warnings"] = "on" if request.GET.get("confirm") == "1" else ""
    form = JudgementForm(data, project=task.project, identical=identical)
    # Revising: the earlier turns whose fields were on the page are judged again too.
    earlier_forms = (
        {turn.number: _earlier_form(task, turn, data) for turn in turns[:-1]}
        if _is_revising(task)
        else {}
    )
    posted = {n: f for n, f in earlier_forms.items() if f.is_posted()}
    wants_follow_up = data.get("action") == "follow_up"
    if form.is_valid() and all(f.is_valid() for f in posted.values()):
        judged = {
            "task": task,
            "by": request.user,
            **form.verdict(),
            "confirm_warnings": form.cleaned_data["confirm_warnings"],
            "earlier": {number: f.verdict() for number, f in posted.items()},
        }
        replayed = False
        try:
            if wants_follow_up:
                services.task_follow_up(prompt=form.cleaned_data["follow_up"], **judged)
            else:
                replayed = services.task_submit_once(**judged).replayed
        except services.JudgementNeedsConfirmation as exc:
            form.add_error(None, exc.message)
            task = selectors.task_get_for_contractor(user=request.user, pk=pk)
            context = _detail_context(
                task,
                request.user,
                form,
                warnings=exc.warnings,
                earlier_forms=earlier_forms,
                layout=layout_of(request),
            )
            return render(request, "tasks/detail.html", context, status=400)
        except ConflictError as exc:
            # Another submit won the race: show the task as it now stands, with the judgement
            # under review, and say why this one was not saved.
            messages.error(request, exc.message)
            task = selectors.task_get_for_contractor(user=request.user, pk=pk)
            return render(
                request,
                "tasks/detail.html",
                _detail_context(task, request.user, layout=layout_of(request)),
                status=409,
            )
        except ApplicationError as exc:
            form.add_error("follow_up" if wants_follow_up else None, exc.message)
        else:
            done = "Follow-up sent to both models." if wants_follow_up else "Submitted for review."
            if not replayed or not _message_pending(request, done):
                messages.success(request, done)
            return redirect("tasks:detail", pk=pk)
    elif any(not f.is_valid() for f in posted.values()):
        form.add_error(None, "An earlier turn's judgement needs attention: see the turns above.")
    task = selectors.task_get_for_contractor(user=request.user, pk=pk)
    context = _detail_context(
        task, request.user, form, earlier_forms=earlier_forms, layout=layout_of(request)
    )
    return render(request, "tasks/detail.html", context, status=400)


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


def _on_candidate(request: HttpRequest, pk: int, service) -> HttpResponse:
    """Run a contractor's action on one candidate; a refusal is shown on the task page."""
    candidate = selectors.candidate_get_for_contractor(user=request.user, pk=pk)
    try:
        service(candidate=candidate, by=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("tasks:detail", pk=candidate.turn.task_id)


@login_required
@contractor_required
@require_POST
def candidate_retry(request: HttpRequest, pk: int) -> HttpResponse:
    return _on_candidate(request, pk, generation_services.candidate_retry)


@login_required
@contractor_required
@require_POST
def candidate_regenerate(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask one of two identical candidates' models again."""
    return _on_candidate(request, pk, generation_services.candidate_regenerate)


@login_required
@contractor_required
@require_POST
def candidate_evidence_retry(request: HttpRequest, pk: int) -> HttpResponse:
    """Run a candidate's checks again after they failed to run."""
    return _on_candidate(request, pk, evidence_services.evidence_retry)


@login_required
def candidate_evidence(request: HttpRequest, pk: int) -> HttpResponse:
    """A candidate's evidence block: the page polls it while the checks run."""
    candidate = selectors.candidate_get_for_viewer(user=request.user, pk=pk)
    context = {
        "candidate": candidate,
        "ev": selectors.candidate_evidence_for_viewer(candidate=candidate, viewer=request.user),
        "evidence_can_retry": candidate.turn.task.contractor_id == request.user.pk,
    }
    return render(request, "tasks/_evidence.html", context)


@login_required
def candidate_evidence_log(request: HttpRequest, pk: int) -> HttpResponse:
    """One check's log (?log=<check number>, acceptance or setup), loaded when opened."""
    candidate = selectors.candidate_get_for_viewer(user=request.user, pk=pk)
    view = selectors.candidate_evidence_for_viewer(candidate=candidate, viewer=request.user)
    found = view["logs"].get(request.GET.get("log", ""))
    if found is None:
        raise Http404("No such log.")
    text, truncated = found
    return render(request, "tasks/_evidence_log.html", {"log": text, "truncated": truncated})


@login_required
@contractor_required
@require_POST
def task_draft(request: HttpRequest, pk: int) -> HttpResponse:
    """Autosave: the page posts the judgement form as the contractor types."""
    task = selectors.task_get_for_judging(user=request.user, pk=pk)
    data = {key: request.POST.get(key, "") for key in request.POST if key != "csrfmiddlewaretoken"}
    draft = services.judgement_draft_save(task=task, by=request.user, data=data)
    if draft is None:
        # Not an error: the page saves as it is left, also right after its own submit, and a
        # save already in flight can land behind the submit. The judgement that counts is the
        # submitted one, so there is nothing to fix and nobody to tell: a 4xx here would only
        # show up as a failed request in the console. 200 (not 204, which the page takes as
        # "saved" and then forgets its own copy) with a line the page shows as the status.
        return HttpResponse(
            "Draft not kept: this task is no longer being judged.", content_type="text/plain"
        )
    return HttpResponse(status=204)


@login_required
@contractor_required
@require_POST
def task_heartbeat(request: HttpRequest, pk: int) -> HttpResponse:
    """Active time: the page reports the seconds it was visible and in use since its last beat."""
    task = selectors.task_get_for_judging(user=request.user, pk=pk)
    try:
        seconds = int(request.POST.get("seconds", "0"))
    except ValueError:
        return HttpResponse("seconds must be a whole number", status=400)
    services.task_record_activity(task=task, by=request.user, seconds=seconds)
    return HttpResponse(status=204)


@login_required
def candidate_diff_file(request: HttpRequest, pk: int, index: int) -> HttpResponse:
    """One changed file of a candidate, in the layout asked for, loaded when it is opened."""
    candidate = selectors.candidate_get_for_diff(user=request.user, pk=pk)
    found = candidate_diff_file_html(candidate, number=index, layout=layout_of(request))
    if found is None:
        raise Http404("No such file in this change.")
    return HttpResponse(found[1])
