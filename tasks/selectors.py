"""Permission-scoped reads: an outsider gets 404, never another person's task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.http import Http404
from django.shortcuts import get_object_or_404

from tasks.evidence_services import candidate_evidence
from tasks.models import (
    REVIEWED_STATES,
    Candidate,
    EvidenceRun,
    Project,
    ProjectEndpoint,
    Task,
    TaskEvent,
    Turn,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def pool_prefetch(path: str) -> Prefetch:
    """The project's pool with its endpoints, which blinding masks (tasks.blinding)."""
    return Prefetch(path, queryset=ProjectEndpoint.objects.select_related("endpoint"))


def _task_qs() -> QuerySet[Task]:
    return Task.objects.select_related(
        "project", "first_endpoint", "second_endpoint", "repository", "contractor"
    ).prefetch_related(
        pool_prefetch("project__pool"),
        Prefetch(
            "turns",
            queryset=Turn.objects.prefetch_related(
                Prefetch("candidates", queryset=Candidate.objects.select_related("endpoint")),
                "judgements",
                "drafts",
            ),
        ),
        Prefetch("events", queryset=TaskEvent.objects.select_related("actor")),
        "submissions",
    )


def task_list_for_contractor(*, user: User) -> QuerySet[Task]:
    return Task.objects.filter(contractor=user).select_related("project", "repository")


def task_get_for_contractor(*, user: User, pk: int) -> Task:
    return get_object_or_404(_task_qs(), pk=pk, contractor=user)


def task_get_for_judging(
    *, user: User, pk: int, latest_turn: bool = False, repository: bool = False
) -> Task:
    """The contractor's task for a write (submit, follow-up, autosave, heartbeat): the task
    and its project in one query, nothing of its turns. The services lock the task and read
    what they need under the lock; prefetching every candidate's diff and answer here, as the
    page's selector does, cost a submit 30 queries. The acceptance tests (up to 1 MB) stay
    unread: no write needs them.

    `latest_turn`: also `latest_turn_identical`, whether both candidates of the latest turn
    made the same change (None without a turn), in the same query: what the judgement form
    of a submit is built for, where reading the turn cost a query of its own.
    `repository`: the repository joined too, for an answer that names it (the API's).
    """
    related = ("project", "repository") if repository else ("project",)
    tasks = Task.objects.select_related(*related).defer("acceptance_tests")
    if latest_turn:
        latest = Turn.objects.filter(task=OuterRef("pk")).order_by("-number")
        tasks = tasks.annotate(
            latest_turn_identical=Subquery(latest.values("has_identical_candidates")[:1])
        )
    return get_object_or_404(tasks, pk=pk, contractor=user)


def task_get_for_reviewer(*, user: User, pk: int) -> Task:
    """A task that reached review. A reviewer's own task is refused outright (403)."""
    task = get_object_or_404(_task_qs(), pk=pk, status__in=REVIEWED_STATES)
    if task.contractor_id == user.pk:
        raise PermissionDenied("You cannot review your own task.")
    return task


def candidate_get_for_contractor(*, user: User, pk: int) -> Candidate:
    return get_object_or_404(
        Candidate.objects.select_related("turn__task"), pk=pk, turn__task__contractor=user
    )


def project_list_active() -> QuerySet[Project]:
    return Project.objects.filter(is_active=True)


def candidate_get_for_viewer(*, user: User, pk: int) -> Candidate:
    """A candidate its task's contractor may see, or a reviewer or admin once the task reached
    review (never their own task)."""
    candidate = get_object_or_404(
        Candidate.objects.select_related(
            "endpoint",
            "turn__task__project",
            "turn__task__first_endpoint",
            "turn__task__second_endpoint",
        ).prefetch_related(pool_prefetch("turn__task__project__pool")),
        pk=pk,
    )
    task = candidate.turn.task
    if task.contractor_id == user.pk and user.has_perm("tasks.work_on_tasks"):
        return candidate
    if (
        (user.has_perm("reviews.review_tasks") or user.has_perm("reviews.oversee_reviews"))
        and task.contractor_id != user.pk
        and task.status in REVIEWED_STATES
    ):
        return candidate
    raise Http404


def candidate_get_for_diff(*, user: User, pk: int) -> Candidate:
    """A candidate whose diff this person may read: a viewer's (candidate_get_for_viewer), or
    one of the pair a contractor holds a judging task on. Only the diff: its comments and
    evidence stay with the viewers, so the second judge sees nothing of the first."""
    try:
        return candidate_get_for_viewer(user=user, pk=pk)
    except Http404:
        candidate = get_object_or_404(Candidate.objects.select_related("turn__task"), pk=pk)
        if (
            user.has_perm("tasks.work_on_tasks")
            and candidate.turn.judging_tasks.filter(contractor=user).exists()
        ):
            return candidate
        raise


# --- Evidence as the pages show it ---------------------------------------------------

WAITING = {"state": "waiting", "reason": "The checks run once both candidates are ready."}
_STATUS_WORDS = {
    "passed": "passed",
    "failed": "failed",
    "timed_out": "timed out",
    "output_exceeded": "too much output",
    "error": "error",
    "not_run": "not run",
}


def attach_evidence_views(*, task: Task, viewer: User) -> None:
    """Give every candidate of the task (turns prefetched) `evidence_view`: its evidence
    shaped for the page, in a constant number of queries however many turns there are
    (turn_evidence would cost two per turn)."""
    candidates = [c for turn in task.turns.all() for c in turn.candidates.all()]
    succeeded = [c for c in candidates if c.status == Candidate.Status.SUCCEEDED]
    runs = {
        run.candidate_id: run
        for run in EvidenceRun.objects.select_related("base_run").filter(candidate__in=succeeded)
    } if succeeded else {}  # fmt: skip
    # Without a run the answer depends on the task and the server only: asked once.
    without_run: dict[str, Any] | None = None
    for turn in task.turns.all():
        settled = all(c.status == Candidate.Status.SUCCEEDED for c in turn.candidates.all())
        for candidate in turn.candidates.all():
            run = runs.get(candidate.pk)
            if run is not None:
                shown = candidate_evidence(candidate, run=run)
            elif not settled:
                shown = WAITING
            else:
                without_run = without_run or candidate_evidence(candidate)
                shown = without_run
            candidate.evidence_view = evidence_view(shown, viewer=viewer)


def candidate_evidence_for_viewer(*, candidate: Candidate, viewer: User) -> dict[str, Any]:
    """One candidate's evidence shaped for the page (the polled fragment, a log)."""
    run = EvidenceRun.objects.select_related("base_run").filter(candidate=candidate).first()
    settled = all(
        status == Candidate.Status.SUCCEEDED
        for status in candidate.turn.candidates.values_list("status", flat=True)
    )
    if run is None and not settled:
        return evidence_view(WAITING, viewer=viewer)
    return evidence_view(candidate_evidence(candidate, run=run), viewer=viewer)


def evidence_for_viewer(evidence: dict[str, Any], *, viewer: User) -> dict[str, Any]:
    """The evidence dict without what only admins may read (why the server cannot check)."""
    if getattr(viewer, "is_staff", False):
        return evidence
    return {key: value for key, value in evidence.items() if key != "admin_reason"}


def evidence_view(evidence: dict[str, Any], *, viewer: User) -> dict[str, Any]:
    """What the evidence block renders: the evidence, plus its headline and one row per
    check with the delta against the base commit in words. Logs stay in `logs` (loaded
    when opened: up to 64 KB each would swell the page)."""
    shown = evidence_for_viewer(evidence, viewer=viewer)
    view: dict[str, Any] = {
        "state": shown["state"],
        "evidence": shown,
        "logs": {},
        # What evidence_retry accepts: the candidate's run or the base commit's failed.
        "can_run_again": shown["state"] == "failed" or bool(shown.get("base_failed")),
    }
    if shown["state"] == "failed":
        setup = shown.get("setup") or {}
        if setup.get("log"):
            view["logs"]["setup"] = (setup["log"], bool(setup.get("log_truncated")))
    if shown["state"] != "ready":
        return view
    summary = shown["summary"]
    view["headline"] = _headline(summary)
    view["rows"] = []
    for number, check in enumerate(summary["checks"]):
        view["logs"][str(number)] = (check.get("log", ""), bool(check.get("log_truncated")))
        view["rows"].append(_check_row(check, log=str(number)))
    if summary.get("acceptance_total") is not None:
        view["acceptance"] = {
            "passed": summary["acceptance_passed"],
            "total": summary["acceptance_total"],
            "status": _STATUS_WORDS.get(shown.get("acceptance_status") or "", "not run"),
            "results": summary["acceptance"],
            "log": "acceptance" if shown.get("acceptance_log") else None,
        }
        view["logs"]["acceptance"] = (shown.get("acceptance_log", ""), False)
    return view


def _headline(summary: dict[str, Any]) -> str:
    if not summary.get("applied", True):
        return "does not apply"
    if summary.get("fixes") is None:
        return "no baseline"
    return f"fixes {summary['fixes']}, breaks {summary['breaks']}"


def _check_row(check: dict[str, Any], *, log: str) -> dict[str, Any]:
    delta = check.get("delta") or {}
    parts: list[str] = []
    if check["kind"] == "tests" and "breaks" in delta:
        parts.append(f"{delta['breaks']} newly failing")
        parts.append(f"{delta['fixes']} newly passing")
        parts.append(f"{delta['still_failing']} still failing")
        if delta.get("added_passing") or delta.get("added_failing"):
            parts.append(
                f"new tests: {delta['added_passing']} passing, {delta['added_failing']} failing"
            )
    elif check["kind"] == "findings" and "added" in delta:
        parts.append(f"{delta['added']} lint findings added, {delta['removed']} removed")
    base_status = delta.get("base_status")
    if base_status is None:
        parts.append("not run at the base commit")
    elif base_status != check["status"]:
        parts.append(f"{_STATUS_WORDS.get(base_status, base_status)} at the base commit")
    duration = check.get("duration_ms")
    return {
        "name": check["name"],
        "status": check["status"],
        "status_words": _STATUS_WORDS.get(check["status"], check["status"]),
        "seconds": None if duration is None else duration / 1000,
        "delta": parts,
        "log": log,
    }
