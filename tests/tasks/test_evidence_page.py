"""Evidence beside each diff: the contractor's workspace, the reviewer's page and the API.

Evidence runs are written directly, with results shaped as tasks/evidence_services._gather
stores them, to drive every state the block shows (the sandbox itself is tested in
tests/tasks/test_evidence_services.py).
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tasks import generation_services, services
from tasks.models import Candidate, CheckRecipe, EvidenceRun, Task
from tests.api_clients import api_client_for
from tests.factories import pool_endpoints
from tests.tasks.helpers import create_task, generate_all, submit, valid_scores

ACCEPTANCE = [{"path": "tests/test_accept.py", "content": "def test_zero():\n    pass\n"}]
ADD, DIV, ZERO = (
    "tests.test_ops::test_add",
    "tests.test_ops::test_div",
    "tests.test_accept::test_zero",
)
SECRET_MODEL = "zephyr-coder-7b"
SECRET_NAME = "Zephyr Prod"


def _check(name, kind, status, *, tests=None, findings=None, log="", truncated=False, ms=1234):
    entry = {"name": name, "kind": kind, "status": status, "exit_code": 0 if status == "passed"
             else 1, "duration_ms": ms, "log": log, "log_truncated": truncated, "counts": {}}  # fmt: skip
    if tests is not None:
        entry["tests"] = tests
    if findings is not None:
        entry["findings"] = findings
    return entry


def _results(*, tests, findings, accepted, log="", truncated=False):
    """What _gather stores: setup, the recipe's checks, then the acceptance tests."""
    return {
        "applied": True,
        "setup": {
            "ok": True,
            "cached": True,
            "duration_ms": 0,
            "commands": [],
            "reason": "",
            "log": "",
            "log_truncated": False,
        },  # fmt: skip
        "checks": [
            _check(
                "unit tests",
                "tests",
                "failed" if "failed" in tests.values() else "passed",
                tests=tests,
                log=log,
                truncated=truncated,
            ),  # fmt: skip
            _check(
                "lint",
                "findings",
                "failed" if findings else "passed",
                findings=findings,
                log="\n".join(findings),
                ms=80,
            ),  # fmt: skip
        ],
        "acceptance": _check(
            "Acceptance tests",
            "tests",
            "passed" if accepted else "failed",
            tests={ZERO: "passed" if accepted else "failed"},
            log="acceptance ran",
        ),  # fmt: skip
    }


BASE = _results(tests={ADD: "passed", DIV: "passed"}, findings=["calc/ops.py: W100 long"],
                accepted=False)  # fmt: skip
FIXING = _results(tests={ADD: "passed", DIV: "passed"}, findings=["calc/ops.py: W100 long"],
                  accepted=True)  # fmt: skip
BREAKING = _results(
    tests={ADD: "failed", DIV: "passed"},
    findings=["calc/ops.py: W100 long", "calc/ops.py: W100 long"],
    accepted=False,
    log=f"<script>alert(1)</script> FAILED test_add; weights of {SECRET_MODEL} loaded",
    truncated=True,
)


@pytest.fixture
def task(ready_repository, project, contractor) -> Task:
    endpoint = pool_endpoints(project)[1]
    endpoint.name, endpoint.model_id = SECRET_NAME, SECRET_MODEL
    endpoint.save()
    task = generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )
    Task.objects.filter(pk=task.pk).update(acceptance_tests=ACCEPTANCE)
    task.refresh_from_db()
    return task


def _candidates(task: Task) -> dict[str, Candidate]:
    return {c.slot: c for c in Candidate.objects.filter(turn__task=task).select_related("endpoint")}


def _base(task, *, status=EvidenceRun.Status.SUCCEEDED, results=BASE) -> EvidenceRun:
    return EvidenceRun.objects.create(task=task, key=f"base-{task.pk}", recipe={},
                                      recipe_digest="d", status=status, results=results)  # fmt: skip


def _run(candidate, base, *, status=EvidenceRun.Status.SUCCEEDED, results=None, error=""):
    return EvidenceRun.objects.create(
        task_id=candidate.turn.task_id, candidate=candidate, base_run=base,
        key=f"c-{candidate.pk}", recipe={}, recipe_digest="d", status=status,
        results=results, error=error,
    )  # fmt: skip


@pytest.fixture
def ready(task) -> dict[str, Candidate]:
    """A fixes the acceptance test and breaks nothing; B breaks test_add and adds a finding.
    B's test log names a model of the project."""
    base = _base(task)
    candidates = _candidates(task)
    _run(candidates["A"], base, results=FIXING)
    _run(candidates["B"], base, results=BREAKING)
    return candidates


def _block(page: str, slot: str) -> str:
    """The evidence block of one slot (the integration test reads the same attribute)."""
    match = re.search(
        rf'<section class="evidence[^"]*" data-evidence-slot="{slot}".*?</section>', page, re.S
    )
    assert match, f"no evidence block for {slot}"
    return match.group(0)


def _page(client, user, task, page: str = "tasks:detail") -> str:
    client.force_login(user)
    response = client.get(reverse(page, args=[task.pk]))
    assert response.status_code == 200
    return response.content.decode()


# --- Ready ---------------------------------------------------------------------------


def test_ready_evidence_shows_the_headline_acceptance_and_each_check(client, contractor, ready):
    page = _page(client, contractor, ready["A"].turn.task)
    a, b = _block(page, "A"), _block(page, "B")
    assert "fixes 1, breaks 0" in a and "fixes 0, breaks 1" in b
    assert "passed 1 of 1" in a and "passed 0 of 1" in b
    assert "unit tests" in b and "lint" in b
    # Deltas against the pinned commit, in words.
    assert "1 newly failing" in b and "0 newly passing" in b and "0 still failing" in b
    assert "1 lint findings added, 0 removed" in b
    assert "0 lint findings added, 0 removed" in a
    assert "1.2 s" in b  # duration_ms 1234
    assert "Run the checks again" not in a + b  # nothing failed


def test_without_a_baseline_the_headline_says_so(client, contractor, task):
    base = _base(task, status=EvidenceRun.Status.FAILED, results=None)
    for candidate in _candidates(task).values():
        _run(candidate, base, results=FIXING)
    block = _block(_page(client, contractor, task), "A")
    assert "no baseline" in block and "fixes" not in block
    # A failed base run can be run again from here.
    assert "Run the checks again" in block


def test_a_log_is_loaded_when_opened_escaped_masked_and_marked_truncated(client, contractor, ready):
    page = _page(client, contractor, ready["A"].turn.task)
    # The page itself carries no log text: each log loads when its <details> opens.
    assert "alert(1)" not in page and SECRET_MODEL not in page and SECRET_NAME not in page
    url = reverse("tasks:candidate_evidence_log", args=[ready["B"].pk])
    assert f'hx-get="{url}?log=0"' in _block(page, "B")
    log = client.get(url, {"log": "0"}).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; FAILED test_add" in log
    assert "<script>" not in log
    assert "log truncated to its last 64 KB" in log
    # Whichever endpoint answered B, a log naming either of the project's models is masked.
    assert SECRET_MODEL not in log and "weights of [model] loaded" in log
    acceptance = client.get(url, {"log": "acceptance"}).content.decode()
    assert "acceptance ran" in acceptance and "truncated" not in acceptance
    assert client.get(url, {"log": "9"}).status_code == 404


def test_the_reviewer_sees_the_same_evidence_without_the_retry_button(
    client, contractor, reviewer, ready
):
    task = submit(ready["A"].turn.task)
    page = _page(client, reviewer, task, "reviews:detail")
    assert "fixes 1, breaks 0" in _block(page, "A")
    assert "fixes 0, breaks 1" in _block(page, "B")
    assert "passed 1 of 1" in _block(page, "A")
    url = reverse("tasks:candidate_evidence_log", args=[ready["B"].pk])
    assert client.get(url, {"log": "0"}).status_code == 200
    assert "Run the checks again" not in page


def test_outsiders_cannot_read_evidence_or_logs(client, other_contractor, reviewer, ready):
    for user in (other_contractor, reviewer):  # the reviewer: not submitted yet
        client.force_login(user)
        for name, query in (("candidate_evidence", {}), ("candidate_evidence_log", {"log": 0})):
            url = reverse(f"tasks:{name}", args=[ready["A"].pk])
            assert client.get(url, query).status_code == 404


# --- Failed, pending, off, none ---------------------------------------------------------


@pytest.fixture
def failed(task) -> dict[str, Candidate]:
    base = _base(task)
    candidates = _candidates(task)
    setup_log = f"pip: no matching distribution <b>x</b> ({SECRET_MODEL})"
    results = {"applied": None, "setup": {"ok": False, "reason": "Setup failed.", "log": setup_log,
               "log_truncated": False}, "checks": [], "acceptance": None}  # fmt: skip
    for candidate in candidates.values():
        _run(candidate, base, status=EvidenceRun.Status.FAILED, results=results,
             error="The setup command failed (exit code 1): see its log.")  # fmt: skip
    return candidates


def test_failed_evidence_says_why_and_offers_to_run_the_checks_again(client, contractor, failed):
    task = failed["A"].turn.task
    block = _block(_page(client, contractor, task), "A")
    assert "The setup command failed (exit code 1): see its log." in block
    retry = reverse("tasks:candidate_evidence_retry", args=[failed["A"].pk])
    assert f'action="{retry}"' in block and "Run the checks again" in block
    log = client.get(
        reverse("tasks:candidate_evidence_log", args=[failed["A"].pk]), {"log": "setup"}
    ).content.decode()
    assert "&lt;b&gt;x&lt;/b&gt;" in log and SECRET_MODEL not in log


def test_the_reviewer_reads_why_the_checks_failed_but_cannot_run_them(client, reviewer, failed):
    task = submit(failed["A"].turn.task)
    block = _block(_page(client, reviewer, task, "reviews:detail"), "A")
    assert "The setup command failed (exit code 1): see its log." in block
    assert "Run the checks again" not in block


def test_the_contractor_runs_failed_checks_again(client, contractor, failed):
    task = failed["A"].turn.task
    CheckRecipe.objects.create(
        repository=task.repository,
        checks=[{"name": "unit tests", "kind": "status", "command": ["true"]}],
    )
    client.force_login(contractor)
    response = client.post(reverse("tasks:candidate_evidence_retry", args=[failed["A"].pk]))
    assert response.status_code == 302
    run = EvidenceRun.objects.get(candidate=failed["A"])
    assert run.status == EvidenceRun.Status.QUEUED and run.error == ""
    block = _block(_page(client, contractor, task), "A")
    assert "checks queued" in block and 'hx-trigger="every 3s"' in block


def test_only_the_contractor_may_run_checks_again(client, other_contractor, reviewer, failed):
    url = reverse("tasks:candidate_evidence_retry", args=[failed["A"].pk])
    client.force_login(other_contractor)
    assert client.post(url).status_code == 404
    client.force_login(reviewer)
    assert client.post(url).status_code == 403
    assert EvidenceRun.objects.get(candidate=failed["A"]).status == EvidenceRun.Status.FAILED


def test_checks_that_did_not_fail_are_not_run_again(client, contractor, ready):
    client.force_login(contractor)
    before = EvidenceRun.objects.get(candidate=ready["A"]).updated_at
    response = client.post(
        reverse("tasks:candidate_evidence_retry", args=[ready["A"].pk]), follow=True
    )
    assert "Only checks that failed can be run again." in response.content.decode()
    run = EvidenceRun.objects.get(candidate=ready["A"])
    assert run.status == EvidenceRun.Status.SUCCEEDED and run.updated_at == before
    assert client.get(
        reverse("tasks:candidate_evidence_retry", args=[ready["A"].pk])
    ).status_code == 405  # fmt: skip


def test_pending_evidence_polls_until_the_checks_are_done(client, contractor, task):
    base = _base(task, status=EvidenceRun.Status.RUNNING, results=None)
    candidates = _candidates(task)
    for candidate in candidates.values():
        _run(candidate, base, status=EvidenceRun.Status.QUEUED)
    url = reverse("tasks:candidate_evidence", args=[candidates["A"].pk])
    block = _block(_page(client, contractor, task), "A")
    assert f'hx-get="{url}"' in block and 'hx-trigger="every 3s"' in block
    assert "checks queued" in block
    EvidenceRun.objects.filter(candidate=candidates["A"]).update(status="RUNNING")
    fragment = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "running the checks" in fragment and 'hx-trigger="every 3s"' in fragment
    EvidenceRun.objects.filter(pk=base.pk).update(status="SUCCEEDED", results=BASE)
    EvidenceRun.objects.filter(candidate=candidates["A"]).update(status="SUCCEEDED", results=FIXING)
    fragment = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    # Done: the fragment shows the figures and no longer asks to be polled.
    assert "fixes 1, breaks 0" in fragment and 'data-evidence-slot="A"' in fragment
    opening = re.search(r"<section[^>]*>", fragment).group(0)
    assert "hx-trigger" not in opening and "hx-get" not in opening


def test_no_recipe_gives_a_short_muted_line(client, contractor, task):
    page = _page(client, contractor, task)
    for slot in ("A", "B"):
        block = _block(page, slot)
        assert "No checks are set up for this repository." in block
        assert "hx-trigger" not in block


def test_evidence_switched_off_tells_only_admins_why(
    client, contractor, admin_user, task, settings
):
    settings.MARLIN_EVIDENCE_ENABLED = False
    block = _block(_page(client, contractor, task), "A")
    assert "Evidence is not available on this server." in block
    assert "MARLIN_EVIDENCE_ENABLED" not in block
    task = submit(task)
    admin_user.is_staff = True
    admin_user.save()
    block = _block(_page(client, admin_user, task, "reviews:detail"), "A")
    assert "MARLIN_EVIDENCE_ENABLED" in block


def test_a_candidate_waiting_for_its_rival_shows_no_figures(
    client, contractor, project, ready_repository
):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    first = Candidate.objects.filter(turn__task=task).order_by("slot").first()
    generation_services.candidate_generate(candidate_id=first.pk)
    client.force_login(contractor)
    page = client.get(reverse("tasks:detail", args=[task.pk])).content.decode()
    assert "The checks run once both candidates are ready." in _block(page, first.slot)


# --- The API -------------------------------------------------------------------------


def test_the_api_gives_each_candidate_its_evidence(contractor, ready):
    task = ready["A"].turn.task
    data = api_client_for(contractor).get(reverse("api-task", args=[task.pk])).json()
    shown = {c["slot"]: c["evidence"] for c in data["turns"][0]["candidates"]}
    assert shown["A"]["state"] == shown["B"]["state"] == "ready"
    assert (shown["A"]["summary"]["fixes"], shown["A"]["summary"]["breaks"]) == (1, 0)
    assert (shown["B"]["summary"]["fixes"], shown["B"]["summary"]["breaks"]) == (0, 1)
    assert shown["A"]["summary"]["acceptance_passed"] == 1
    body = str(data)
    assert SECRET_MODEL not in body and SECRET_NAME not in body


def test_the_api_keeps_the_admin_reason_for_admins(contractor, task, settings):
    settings.MARLIN_EVIDENCE_ENABLED = False
    data = api_client_for(contractor).get(reverse("api-task", args=[task.pk])).json()
    evidence = data["turns"][0]["candidates"][0]["evidence"]
    assert evidence["state"] == "off" and "admin_reason" not in evidence
    assert evidence["reason"] == "Evidence is not available on this server."


def test_the_reviewer_api_shows_evidence_too(reviewer, ready):
    task = submit(ready["A"].turn.task)
    data = api_client_for(reviewer).get(reverse("api-review-task", args=[task.pk])).json()
    shown = {c["slot"]: c["evidence"] for c in data["turns"][0]["candidates"]}
    assert shown["B"]["summary"]["breaks"] == 1
    assert data["acceptance_tests"] == ACCEPTANCE


def test_the_api_runs_failed_checks_again_for_their_contractor_only(
    contractor, other_contractor, failed
):
    task = failed["A"].turn.task
    CheckRecipe.objects.create(
        repository=task.repository,
        checks=[{"name": "unit tests", "kind": "status", "command": ["true"]}],
    )
    url = reverse("api-candidate-evidence-retry", args=[failed["A"].pk])
    assert api_client_for(other_contractor).post(url).status_code == 404
    assert EvidenceRun.objects.get(candidate=failed["A"]).status == EvidenceRun.Status.FAILED
    response = api_client_for(contractor).post(url)
    assert response.status_code == 202, response.content
    assert response.json()["evidence"]["state"] == "pending"
    assert EvidenceRun.objects.get(candidate=failed["A"]).status == EvidenceRun.Status.QUEUED


def test_the_api_refuses_to_run_checks_again_that_did_not_fail(contractor, ready):
    url = reverse("api-candidate-evidence-retry", args=[ready["A"].pk])
    response = api_client_for(contractor).post(url)
    assert response.status_code == 400
    assert response.json()["detail"] == "Only checks that failed can be run again."


# --- Queries -------------------------------------------------------------------------


def _queries(client, task) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("tasks:detail", args=[task.pk])).status_code == 200
    return len(queries)


def _add_runs(task) -> None:
    base = EvidenceRun.objects.filter(task=task, candidate__isnull=True).first() or _base(task)
    for candidate in Candidate.objects.filter(turn__task=task, evidence__isnull=True):
        _run(candidate, base, results=FIXING)


def test_evidence_costs_the_same_queries_for_1_and_3_turns(client, contractor, task):
    _add_runs(task)
    client.force_login(contractor)
    one_turn = _queries(client, task)
    for _ in range(2):
        services.task_follow_up(
            task=task, by=contractor, preference=-2, scores=valid_scores(task.project),
            justification="A is the safer change here.", prompt="Also handle negatives.",
        )  # fmt: skip
        generate_all(task)
        _add_runs(task)
    assert EvidenceRun.objects.filter(candidate__isnull=False).count() == 6
    page = client.get(reverse("tasks:detail", args=[task.pk])).content.decode()
    assert page.count("fixes 1, breaks 0") == 6  # every turn's candidates show theirs
    assert _queries(client, task) == one_turn
