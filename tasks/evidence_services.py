"""Evidence runs: queue them when a turn's candidates are ready, run them, read them back.

A turn whose two candidates are ready gets one run per candidate and, shared by every
turn of the task, one run of the pinned commit (the base) with the same recipe and
acceptance tests. Each run is a job on its own queue (MARLIN_EVIDENCE_QUEUE), so checks
never hold up generation. The checks themselves run outside any transaction.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from marlin.exceptions import ApplicationError, InvalidTransition
from repos import git_client
from repos import services as repo_services
from tasks import evidence, evidence_sandbox, failure_detail, jobs
from tasks.blinding import identity_names, mask_identity
from tasks.evidence_sandbox import EvidenceError
from tasks.models import Candidate, CheckRecipe, EvidenceRun, Task, Turn

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

ACCEPTANCE_CHECK = "Acceptance tests"
# Time kept back from the job's soft limit to store what was gathered.
RESERVE_SECONDS = 30
# A QUEUED run untouched this long lost its message; it is sent again.
QUEUED_STALE_SECONDS = 600
MAX_ATTEMPTS = 3


def recipe_for(task: Task) -> CheckRecipe | None:
    """The project's own recipe for the task's repository, else the repository's general one."""
    recipes = CheckRecipe.objects.filter(repository_id=task.repository_id, is_enabled=True)
    own = recipes.filter(project_id=task.project_id).first()
    return own or recipes.filter(project__isnull=True).first()


def _keys(task: Task, recipe: dict, candidate: Candidate | None) -> tuple[str, str, str]:
    recipe_digest = evidence.recipe_digest(recipe)
    base_key = evidence.recipe_digest(
        {
            "commit": task.commit_sha,
            "recipe": recipe_digest,
            "acceptance": evidence.acceptance_digest(task.acceptance_tests),
        }
    )
    if candidate is None:
        return recipe_digest, base_key, base_key
    return (
        recipe_digest,
        base_key,
        evidence.recipe_digest({"base": base_key, "diff": candidate.diff}),
    )


def _send(run_ids: list[int]) -> None:
    for run_id in run_ids:
        transaction.on_commit(
            lambda run_id=run_id: jobs.evidence_collect_run.delay(run_id=run_id), robust=True
        )


@transaction.atomic
def evidence_request(*, turn: Turn) -> list[EvidenceRun]:
    """Queue the checks of a turn whose candidates are ready; already-current runs are kept.

    Nothing is queued when the repository has no recipe or evidence is off on this server
    (the page says which).
    """
    task = Task.objects.select_related("repository").get(pk=turn.task_id)
    recipe_row = recipe_for(task)
    if recipe_row is None or evidence_sandbox.availability() is not None:
        return []
    recipe = recipe_row.snapshot()
    recipe_digest, base_key, _ = _keys(task, recipe, None)
    base, created = EvidenceRun.objects.get_or_create(
        task=task, candidate=None, key=base_key,
        defaults={"recipe": recipe, "recipe_digest": recipe_digest},
    )  # fmt: skip
    to_send = [base.pk] if created else []
    if base.status == EvidenceRun.Status.FAILED:
        base.restart(key=base_key, recipe=recipe, recipe_digest=recipe_digest)
        to_send.append(base.pk)
    runs = [base]
    for candidate in turn.candidates.filter(status=Candidate.Status.SUCCEEDED):
        _, _, key = _keys(task, recipe, candidate)
        run = EvidenceRun.objects.filter(candidate=candidate).first()
        if run is None:
            run = EvidenceRun.objects.create(
                task=task, candidate=candidate, base_run=base, key=key, recipe=recipe,
                recipe_digest=recipe_digest,
            )  # fmt: skip
            to_send.append(run.pk)
        elif run.key != key or run.status == EvidenceRun.Status.FAILED:
            run.restart(key=key, recipe=recipe, recipe_digest=recipe_digest, base_run=base)
            to_send.append(run.pk)
        runs.append(run)
    _send(to_send)
    return runs


@transaction.atomic
def evidence_retry(*, candidate: Candidate, by: User) -> list[EvidenceRun]:
    """Run a candidate's failed checks again (and the base commit's, if those failed).

    Only the task's contractor, and only when something failed: a run still going or done
    is left as it is.
    """
    task = Task.objects.select_for_update().get(pk=candidate.turn.task_id)
    if task.contractor_id != by.pk:
        raise ApplicationError("Only the task's contractor can run its checks again.")
    run = EvidenceRun.objects.select_related("base_run").filter(candidate=candidate).first()
    failed = EvidenceRun.Status.FAILED
    if run is None or failed not in (run.status, run.base_run and run.base_run.status):
        raise ApplicationError("Only checks that failed can be run again.")
    return evidence_request(turn=candidate.turn)


def evidence_collect(*, run_id: int, job_id: str = "") -> EvidenceRun | None:
    """Run the checks of one evidence run and store what they said (the job's one call).

    Claims the row first: a duplicate message finds it taken and does nothing.
    """
    run = EvidenceRun.objects.select_related("task__repository", "candidate").get(pk=run_id)
    try:
        run.claim(job_id=job_id)
    except InvalidTransition:
        logger.info("evidence run %s already taken (%s); nothing to do", run_id, run.status)
        return None
    if reason := evidence_sandbox.availability():
        run.fail(reason=reason, job_id=job_id)
        evidence_record_verdicts(run=run)
        return run
    try:
        results = _gather(run)
    except EvidenceError as exc:
        run.fail(reason=exc.message, job_id=job_id)
    except git_client.GitError as exc:
        run.fail(
            reason="The repository could not be checked out for the checks.",
            detail=failure_detail.scrub(str(exc)), job_id=job_id,
        )  # fmt: skip
    else:
        setup = results.get("setup") or {}
        if setup and not setup.get("ok"):
            run.fail(reason=setup["reason"], job_id=job_id, results=results)
        else:
            run.succeed(results=results, job_id=job_id)
    evidence_record_verdicts(run=run)
    return run


@transaction.atomic
def evidence_record_verdicts(*, run: EvidenceRun) -> None:
    """Store the verdict of every candidate run that `run` completes: itself once its base
    run is done, or, for a base run, each of its candidates that is done.

    Either may finish last, in two processes at once: both lock the base run's row, so the
    second to get the lock sees the first one's result.
    """
    base_id = run.pk if run.is_base else run.base_run_id
    base = EvidenceRun.objects.select_for_update().get(pk=base_id) if base_id else None
    if base is not None and not base.is_terminal:
        return
    candidates = EvidenceRun.objects.filter(base_run=base) if run.is_base else (
        EvidenceRun.objects.filter(pk=run.pk)
    )  # fmt: skip
    base_results = base.results if base and base.status == EvidenceRun.Status.SUCCEEDED else None
    for candidate in candidates.filter(status=EvidenceRun.Status.SUCCEEDED).select_related("task"):
        summary = evidence.summary(
            base=base_results, candidate=candidate.results or {},
            acceptance_paths=[test["path"] for test in candidate.task.acceptance_tests],
        )  # fmt: skip
        # Only a run still SUCCEEDED: one re-queued meanwhile gets its verdict from its own
        # new results when it finishes.
        EvidenceRun.objects.filter(pk=candidate.pk, status=EvidenceRun.Status.SUCCEEDED).update(
            verdict=summary, is_clean=evidence.clean_candidate(summary)
        )


def evidence_fail(*, run_id: int, reason: str, detail: str = "", job_id: str | None = None) -> None:
    """Mark a run FAILED (the job's time limit, an internal error) unless another job holds it."""
    run = EvidenceRun.objects.get(pk=run_id)
    try:
        run.fail(reason=reason, detail=failure_detail.scrub(detail), job_id=job_id)
    except InvalidTransition:
        logger.info("evidence run %s not failed: no longer held by job %s", run_id, job_id)
        return
    evidence_record_verdicts(run=run)


def _gather(run: EvidenceRun) -> dict[str, Any]:
    task = run.task
    recipe = run.recipe
    deadline = time.monotonic() + settings.MARLIN_EVIDENCE_SOFT_TIME_LIMIT_SECONDS - RESERVE_SECONDS
    with git_client.temporary_worktree(
        repo_services.repository_cache_path(task.repository), task.commit_sha,
        allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES,
        max_bytes=settings.MARLIN_CLONE_MAX_MB * 1024 * 1024,
    ) as tree:  # fmt: skip
        # Setup sees the pinned commit only: its cached result is shared by every candidate.
        setup = _setup(task, recipe, tree)
        if not setup["ok"]:
            return {"applied": None, "setup": setup, "checks": [], "acceptance": None}
        env_dir = setup.pop("path")
        if run.candidate is not None:
            try:
                git_client.apply_to_worktree(tree, run.candidate.diff)
            except git_client.GitError as exc:
                return {"applied": False, "apply_error": exc.message, "setup": setup,
                        "checks": [], "acceptance": None}  # fmt: skip
        evidence_sandbox.write_acceptance_tests(tree, task.acceptance_tests)
        checks = [
            _check(check, tree=tree, env_dir=env_dir, deadline=deadline)
            for check in recipe["checks"]
        ]
        acceptance = None
        if task.acceptance_tests:
            paths = [test["path"] for test in task.acceptance_tests]
            acceptance_check = {
                "name": ACCEPTANCE_CHECK, "kind": "tests",
                "command": evidence.expand(recipe["acceptance_command"], files=paths),
                "timeout_seconds": evidence.MAX_CHECK_SECONDS,
            }  # fmt: skip
            acceptance = _check(acceptance_check, tree=tree, env_dir=env_dir, deadline=deadline)
    return {"applied": True, "setup": setup, "checks": checks, "acceptance": acceptance}


def _setup(task: Task, recipe: dict, tree) -> dict[str, Any]:
    if not recipe["setup_commands"]:
        return {"ok": True, "cached": False, "duration_ms": 0, "path": None, "commands": []}
    outcome = evidence_sandbox.prepare_environment(
        key=evidence_sandbox.setup_key(
            repository_id=task.repository_id, commit_sha=task.commit_sha,
            recipe_digest=evidence.recipe_digest(
                {"setup": recipe["setup_commands"], "timeout": recipe["setup_timeout_seconds"]}
            ),
        ),
        setup_commands=recipe["setup_commands"],
        timeout=recipe["setup_timeout_seconds"],
        source=tree,
    )  # fmt: skip
    return {
        "ok": outcome.ok,
        "cached": outcome.cached,
        "duration_ms": outcome.duration_ms,
        "path": outcome.path,
        "commands": outcome.commands,
        "reason": outcome.reason,
        "log": outcome.log,
        "log_truncated": outcome.log_truncated,
    }


def _check(check: dict, *, tree, env_dir, deadline: float) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": check["name"], "kind": check["kind"], "counts": {}}
    remaining = deadline - time.monotonic()
    if remaining < 5:
        return entry | {"status": "not_run", "exit_code": None, "duration_ms": 0,
                        "log": "[marlin] not run: the evidence job ran out of time.",
                        "log_truncated": False}  # fmt: skip
    ran = evidence_sandbox.run_command(
        evidence.expand(check["command"]), source=tree, env_dir=env_dir,
        timeout=min(check["timeout_seconds"], remaining),
    )  # fmt: skip
    entry |= {
        "status": ran.status,
        "exit_code": ran.exit_code,
        "duration_ms": ran.duration_ms,
        "log": ran.log,
        "log_truncated": ran.log_truncated,
    }
    if check["kind"] == "tests":
        outcomes = evidence.junit_outcomes(ran.report)
        if outcomes is None and ran.status in ("passed", "failed"):
            entry["status"] = "error"
            entry["log"] += "\n[marlin] the check wrote no readable JUnit report to {report}."
        entry["tests"] = outcomes or {}
        entry["counts"] = {
            outcome: sum(1 for value in (outcomes or {}).values() if value == outcome)
            for outcome in (evidence.PASSED, evidence.FAILED, evidence.SKIPPED)
        }
    elif check["kind"] == "findings":
        entry["findings"] = evidence.findings(ran.output)
        entry["counts"] = {"findings": len(entry["findings"])}
    return entry


# --- Reading -------------------------------------------------------------------------


def turn_evidence(turn: Turn) -> dict[str, dict[str, Any]]:
    """Slot → candidate_evidence(...) for the turn's candidates, in two queries."""
    candidates = list(turn.candidates.select_related("turn__task__project", "endpoint"))
    runs = {
        run.candidate_id: run
        for run in EvidenceRun.objects.select_related("base_run").filter(candidate__in=candidates)
    }
    return {
        candidate.slot: candidate_evidence(candidate, run=runs.get(candidate.pk))
        if candidate.status == Candidate.Status.SUCCEEDED
        else {"state": "waiting"}
        for candidate in candidates
    }


def candidate_evidence(candidate: Candidate, *, run: EvidenceRun | None = None) -> dict[str, Any]:
    """What the page and the API show of one candidate's evidence.

    state: "off" (not available on this server), "none" (no recipe), "pending", "failed"
    or "ready"; logs and errors are masked like the candidate's answer, so they never name a
    model.
    """
    if run is None:
        run = EvidenceRun.objects.select_related("base_run").filter(candidate=candidate).first()
    if run is None:
        if reason := evidence_sandbox.availability():
            return {"state": "off", "reason": "Evidence is not available on this server."
                    if reason else "", "admin_reason": reason}  # fmt: skip
        if recipe_for(candidate.turn.task) is None:
            return {"state": "none", "reason": "No checks are set up for this repository."}
        # Runs are created with the turn's last candidate: none means none were asked for.
        return {"state": "none", "reason": "The checks were set up after this turn; none ran."}
    base = run.base_run
    if run.status in (EvidenceRun.Status.QUEUED, EvidenceRun.Status.RUNNING) or (
        base is not None and base.status in (EvidenceRun.Status.QUEUED, EvidenceRun.Status.RUNNING)
    ):
        return {"state": "pending", "status": run.status, "base_status": base and base.status}
    names = identity_names(candidate)
    if run.status == EvidenceRun.Status.FAILED:
        return {"state": "failed", "reason": mask_identity(run.error, names=names),
                "setup": _masked_setup(run.results, names)}  # fmt: skip
    base_results = base.results if base is not None and base.status == "SUCCEEDED" else None
    summary = evidence.summary(
        base=base_results, candidate=run.results or {},
        acceptance_paths=[test["path"] for test in candidate.turn.task.acceptance_tests],
    )  # fmt: skip
    logs = {c["name"]: c for c in (run.results or {}).get("checks", [])}
    if acceptance := (run.results or {}).get("acceptance"):
        logs[acceptance["name"]] = acceptance
    for check in summary["checks"]:
        stored = logs.get(check["name"], {})
        check["log"] = mask_identity(stored.get("log", ""), names=names)
        check["log_truncated"] = stored.get("log_truncated", False)
    acceptance_entry = logs.get(ACCEPTANCE_CHECK)
    return {
        "state": "ready",
        "summary": summary,
        "base_failed": base is not None and base.status == EvidenceRun.Status.FAILED,
        "apply_error": mask_identity((run.results or {}).get("apply_error", ""), names=names),
        "acceptance_log": mask_identity(acceptance_entry["log"], names=names)
        if acceptance_entry
        else "",
        "acceptance_status": acceptance_entry["status"] if acceptance_entry else None,
        "setup": _masked_setup(run.results, names),
        "recipe_digest": run.recipe_digest,
    }


def _masked_setup(results: dict | None, names: list[str]) -> dict:
    setup = dict((results or {}).get("setup") or {})
    if setup.get("log"):
        setup["log"] = mask_identity(setup["log"], names=names)
    return setup


def export_evidence(run: EvidenceRun | None) -> dict | None:
    """The native export's per-candidate evidence: the stored verdict, no logs; None without
    a run. `applied` is None until the run and its base run are both done."""
    if run is None:
        return None
    record: dict[str, Any] = {
        "status": run.status,
        "recipe": run.recipe,
        "recipe_hash": run.recipe_digest,
        "error": run.error,
    }
    verdict = run.verdict
    if run.status != EvidenceRun.Status.SUCCEEDED or verdict is None:
        return record | {"applied": None}
    return record | {
        "applied": verdict["applied"],
        "fixes": verdict["fixes"],
        "breaks": verdict["breaks"],
        "checks": verdict["checks"],
        "acceptance": verdict["acceptance"],
        "acceptance_passed": verdict.get("acceptance_passed"),
        "acceptance_total": verdict.get("acceptance_total"),
        "clean": run.is_clean,
    }


# --- Repair --------------------------------------------------------------------------


def evidence_reap_stale(*, now: datetime | None = None) -> dict[str, int]:
    """Periodic: send again runs whose worker died or whose message was lost; give up on a
    run after MAX_ATTEMPTS."""
    now = now or timezone.now()
    running_cutoff = now - timedelta(seconds=settings.MARLIN_EVIDENCE_TIME_LIMIT_SECONDS + 120)
    queued_cutoff = now - timedelta(seconds=QUEUED_STALE_SECONDS)
    sent = failed = 0
    stale = EvidenceRun.objects.filter(
        status=EvidenceRun.Status.RUNNING, started_at__lt=running_cutoff
    ) | EvidenceRun.objects.filter(status=EvidenceRun.Status.QUEUED, updated_at__lt=queued_cutoff)
    for run in stale:
        with transaction.atomic():
            if run.attempts >= MAX_ATTEMPTS:
                try:
                    run.fail(reason="The checks stopped before they finished, several times.",
                             detail=f"{run.attempts} attempts, last started {run.started_at}")  # fmt: skip
                    failed += 1
                except InvalidTransition:
                    continue
                evidence_record_verdicts(run=run)
                continue
            try:
                run.send_again()
            except InvalidTransition:
                continue
            _send([run.pk])
            sent += 1
    return {"sent": sent, "failed": failed}
