from __future__ import annotations

import hashlib
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from marlin.exceptions import ApplicationError
from marlin.permissions import can_oversee, is_reviewer
from reviews import (
    claim_services,
    earning_selectors,
    export_job_services,
    metrics,
    notification_services,
    quality_agreement,
    selectors,
    services,
)
from reviews.dashboard_page import dashboard_page_figures
from reviews.earning_selectors import Period
from reviews.export_download import export_download_response
from reviews.forms import DashboardForm, ExportForm, PeriodForm, QueueFilterForm, ReviewForm
from reviews.models import ExportJob
from reviews.review_page import review_page_context
from tasks.diff_html import layout_of
from tasks.models import Task
from tasks.selectors import task_get_for_reviewer

reviewer_required = permission_required("reviews.review_tasks", raise_exception=True)
overseer_required = permission_required("reviews.oversee_reviews", raise_exception=True)
contractor_required = permission_required("tasks.work_on_tasks", raise_exception=True)


def reviewer_or_overseer_required(view):
    """Reviewers open tasks to review them; admins open them to see their record."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not (is_reviewer(request.user) or can_oversee(request.user)):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


@login_required
@reviewer_required
def review_queue(request: HttpRequest) -> HttpResponse:
    form = QueueFilterForm(request.GET or None)
    filters = form.filters() if form.is_bound and form.is_valid() else {}
    tasks = selectors.review_queue(user=request.user, **filters)
    return render(
        request,
        "reviews/queue.html",
        {
            "tasks": tasks[:200],
            "form": form if form.is_bound else QueueFilterForm(),
            "now": timezone.now(),
        },
        status=400 if form.is_bound and not form.is_valid() else 200,
    )


def _render_detail(request: HttpRequest, task: Task, form: ReviewForm | None, status: int = 200):
    context = review_page_context(task=task, viewer=request.user, layout=layout_of(request))
    if task.status == Task.Status.SUBMITTED and context["claimed_by_me"]:
        context["form"] = form or ReviewForm()
    return render(request, "reviews/detail.html", context, status=status)


@login_required
@reviewer_or_overseer_required
def review_detail(request: HttpRequest, pk: int) -> HttpResponse:
    task = task_get_for_reviewer(user=request.user, pk=pk)
    return _render_detail(request, task, None)


@login_required
@reviewer_required
@require_POST
def review_claim(request: HttpRequest, pk: int) -> HttpResponse:
    task = task_get_for_reviewer(user=request.user, pk=pk)
    try:
        claim = claim_services.review_claim(task=task, reviewer=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("reviews:queue")
    messages.success(
        request, f"Task #{task.pk} is yours until {timezone.localtime(claim.expires_at):%H:%M}."
    )
    return redirect("reviews:detail", pk=pk)


@login_required
@reviewer_required
@require_POST
def review_release(request: HttpRequest, pk: int) -> HttpResponse:
    task = task_get_for_reviewer(user=request.user, pk=pk)
    try:
        claim_services.review_release(task=task, reviewer=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("reviews:detail", pk=pk)
    messages.success(request, f"Task #{task.pk} is back in the queue.")
    return redirect("reviews:queue")


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
                notes=form.cleaned_data["notes"],
            )
        except ApplicationError as exc:
            # Shown at the top as well: without the claim the page has no form to carry it.
            messages.error(request, exc.message)
            form.add_error(None, exc.message)
            return _render_detail(request, task, form, status=exc.status_code)
        if review.decision == review.Decision.ACCEPT:
            verb = "accepted"
        else:
            verb = "rejected (last round)" if review.rejects_task else "bounced"
        messages.success(request, f"Task #{task.pk} {verb}.")
        return redirect("reviews:queue")
    return _render_detail(request, task, form, status=400)


@login_required
@contractor_required
def my_earnings(request: HttpRequest) -> HttpResponse:
    summary = earning_selectors.contractor_earnings(user=request.user)
    return render(request, "reviews/earnings.html", {"summary": summary})


def _period_of(request: HttpRequest) -> tuple[PeriodForm, Period, int]:
    """The period asked for (this month by default), its form and the page's status."""
    form = PeriodForm(request.GET or None)
    period = form.period()
    status = 400 if form.is_bound and not form.is_valid() else 200
    if not form.is_bound:
        form = PeriodForm(initial={"start": period.start, "end": period.end})
    return form, period, status


@login_required
@overseer_required
def payouts(request: HttpRequest) -> HttpResponse:
    form, period, status = _period_of(request)
    if request.GET.get("format") == "csv" and status == 200:
        response = StreamingHttpResponse(
            earning_selectors.payout_csv_lines(period=period), content_type="text/csv"
        )
        response["Content-Disposition"] = (
            f'attachment; filename="marlin-payout-{period.start}-{period.end}.csv"'
        )
        return response
    contractors = earning_selectors.payout_by_contractor(period=period)
    context = {
        "form": form,
        "period": period,
        "contractors": contractors,
        "reviewers": earning_selectors.totals_by_reviewer(period=period),
        "total_amount": sum((row["amount"] for row in contractors), start=0),
        "total_tasks": sum(row["tasks"] for row in contractors),
    }
    return render(request, "reviews/payouts.html", context, status=status)


@login_required
@overseer_required
def reviewer_metrics(request: HttpRequest) -> HttpResponse:
    form, period, status = _period_of(request)
    context = {"form": form, "period": period, "metrics": metrics.reviewer_metrics(period=period)}
    return render(request, "reviews/metrics.html", context, status=status)


@login_required
@overseer_required
def dashboard_page(request: HttpRequest) -> HttpResponse:
    """Win rates, Bradley-Terry strengths, bias and throughput, per project or overall; a
    project's page adds its leaderboard."""
    form = DashboardForm(request.GET or None)
    page = dashboard_page_figures(project=form.cleaned_data["project"] if form.is_valid() else None)
    context = {
        "form": form if form.is_bound else DashboardForm(),
        "project": page.project,
        "board": page.board,
        "leaderboard": page.leaderboard,
        "chart_data": page.chart_data,
        "overturn_rates": page.overturn_rates,
        "gold_accuracy": sorted(page.gold_accuracy, key=lambda row: row.username),
        "agreement_html": _agreement_html(page.agreement),
    }
    return render(request, "reviews/dashboard.html", context)


def _agreement_html(section: quality_agreement.Agreement) -> str:
    """The agreement section's HTML (a row per contractor and reviewer: the page's largest
    part), cached under a digest of the figures it shows, so it is rendered again only when
    one of them changed. Rendered by the template engine, so escaped as any template."""
    key = f"agreement-html:{hashlib.sha256(repr(section).encode()).hexdigest()}"
    html = cache.get(key)
    if html is None:
        html = render_to_string("reviews/_agreement.html", {"agreement": section})
        cache.set(key, html, timeout=quality_agreement.ROW_CACHE_SECONDS)
    return mark_safe(html)  # noqa: S308 - rendered by the autoescaping template engine


@login_required
def notification_list(request: HttpRequest) -> HttpResponse:
    items = notification_services.notifications_open(user=request.user)
    return render(request, "reviews/notifications.html", {"notifications": items})


@login_required
@require_POST
def notifications_read(request: HttpRequest) -> HttpResponse:
    notification_services.notifications_mark_read(user=request.user)
    return redirect("reviews:notifications")


export_required = permission_required("reviews.export_dataset", raise_exception=True)


@login_required
@export_required
def export(request: HttpRequest) -> HttpResponse:
    """The export form; starting an export queues a job and shows its progress page."""
    form = ExportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = export_job_services.export_job_start(
                by=request.user,
                fmt=form.cleaned_data["format"],
                filters=form.filters(),
                prompt_style=form.cleaned_data["prompt_style"],
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("reviews:export_job", pk=job.pk)
    jobs = ExportJob.objects.select_related("requested_by")[:20]
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "reviews/export.html", {"form": form, "jobs": jobs}, status=status)


@login_required
@export_required
def export_job(request: HttpRequest, pk: int) -> HttpResponse:
    """An export's progress; the fragment polls itself until the file is ready."""
    job = get_object_or_404(ExportJob, pk=pk)
    template = "reviews/_export_progress.html" if request.htmx else "reviews/export_job.html"
    return render(
        request, template, {"job": job, "message": export_job_services.export_job_message(job)}
    )


@login_required
@export_required
def export_download(request: HttpRequest, pk: int) -> FileResponse:
    return export_download_response(pk=pk)
