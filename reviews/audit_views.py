"""Pages of reviewer audits: the queue, and an accepted task shown as its reviewer decided
it, with the auditor's uphold or overturn. The rules are in reviews.quality_audits."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from marlin.exceptions import ApplicationError
from reviews import quality_audits
from reviews.models import ReviewAudit
from reviews.review_page import review_page_context
from reviews.views import reviewer_or_overseer_required, reviewer_required
from tasks.diff_html import layout_of
from tasks.selectors import task_get_for_reviewer


class AuditDecisionForm(forms.Form):
    outcome = forms.ChoiceField(choices=[("uphold", "Uphold"), ("overturn", "Overturn")])
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5}),
        required=False,
        max_length=quality_audits.NOTE_MAX_CHARS,
        label="Note",
        help_text="Required to overturn: what the first reviewer should have seen.",
    )


@login_required
@reviewer_required
def audit_queue(request: HttpRequest) -> HttpResponse:
    audits = quality_audits.audit_queue(user=request.user)[:200]
    return render(request, "reviews/audits.html", {"audits": audits})


def _render_audit(
    request: HttpRequest, audit: ReviewAudit, form: AuditDecisionForm | None, status: int = 200
) -> HttpResponse:
    # Through the review page's own selector and builder: the same task, turns, judgements,
    # decisions and timeline a reviewer saw, and the same refusal of one's own task.
    task = task_get_for_reviewer(user=request.user, pk=audit.review.task_id)
    context = review_page_context(task=task, viewer=request.user, layout=layout_of(request))
    held = audit.status == ReviewAudit.Status.TAKEN and audit.auditor_id == request.user.pk
    # Not named `form`: the review page shows its note inputs whenever `form` is set.
    context.update(
        audit=audit,
        audit_held_by_me=held,
        audit_form=(form or AuditDecisionForm()) if held else None,
    )
    return render(request, "reviews/audit_detail.html", context, status=status)


@login_required
@reviewer_or_overseer_required
def audit_detail(request: HttpRequest, pk: int) -> HttpResponse:
    audit = quality_audits.audit_get_for_user(user=request.user, pk=pk)
    return _render_audit(request, audit, None)


@login_required
@reviewer_required
@require_POST
def audit_take(request: HttpRequest, pk: int) -> HttpResponse:
    audit = quality_audits.audit_get_for_user(user=request.user, pk=pk)
    try:
        quality_audits.audit_take(audit=audit, by=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("reviews:audits")
    messages.success(request, f"You are auditing task #{audit.review.task_id}.")
    return redirect("reviews:audit_detail", pk=pk)


@login_required
@reviewer_required
@require_POST
def audit_decide(request: HttpRequest, pk: int) -> HttpResponse:
    audit = quality_audits.audit_get_for_user(user=request.user, pk=pk)
    form = AuditDecisionForm(request.POST)
    if not form.is_valid():
        return _render_audit(request, audit, form, status=400)
    try:
        audit = quality_audits.audit_decide(
            audit=audit,
            by=request.user,
            overturn=form.cleaned_data["outcome"] == "overturn",
            note=form.cleaned_data["note"],
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        form.add_error(None, exc.message)
        return _render_audit(request, audit, form, status=exc.status_code)
    messages.success(
        request,
        f"Audit of task #{audit.review.task_id}: {audit.get_status_display().lower()}.",
    )
    return redirect("reviews:audits")
