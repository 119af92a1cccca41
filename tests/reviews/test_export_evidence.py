"""Evidence in the dataset: each candidate's checks in the native export, whether they agree
with the preference, and the export filter keeping turns where they agree (or disagree)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from marlin.exceptions import ApplicationError
from reviews import exports
from reviews.export_filters import ExportFilters
from reviews.export_job_services import export_job_execute, write_export
from reviews.exports import export_lines, native_records
from reviews.forms import ExportForm
from reviews.models import ExportJob
from tasks import evidence, evidence_services
from tasks.models import EvidenceRun, Task
from tests.api_clients import api_client_for
from tests.reviews.test_export_summary import use_own_export_folder
from tests.tasks.helpers import create_task, decide, generate_all, submit

ACCEPT_PATH = "tests/test_accept.py"
ACCEPT_ID = "tests.test_accept::test_zero"
OLD_ID = "tests.test_ops::test_add"
RECIPE = {
    "setup_commands": [],
    "setup_timeout_seconds": 600,
    "checks": [
        {"name": "tests", "command": ["python", "-m", "pytest", "-q", "--junitxml={report}"],
         "kind": "tests", "timeout_seconds": 300},
        {"name": "lint", "command": ["ruff", "check", "."], "kind": "findings",
         "timeout_seconds": 60},
    ],
    "acceptance_command": list(evidence.DEFAULT_ACCEPTANCE_COMMAND),
}  # fmt: skip
DIGEST = evidence.recipe_digest(RECIPE)
# Logs stay out of the dataset: they are long, and may name the model.
LOG = "LOG-TEXT-NEVER-EXPORTED"


def _tests_check(name: str, outcomes: dict[str, str]) -> dict:
    failed = "failed" in outcomes.values()
    return {
        "name": name, "kind": "tests", "status": "failed" if failed else "passed",
        "exit_code": 1 if failed else 0, "duration_ms": 1200, "log": LOG,
        "log_truncated": False, "tests": outcomes,
        "counts": {o: sum(1 for v in outcomes.values() if v == o)
                   for o in ("passed", "failed", "skipped")},
    }  # fmt: skip


def results(suite: dict[str, str], accepted: str, findings: list[str] = ()) -> dict:
    """An EvidenceRun's results as tasks.evidence_services._gather stores them."""
    return {
        "applied": True,
        "setup": {"ok": True, "cached": True, "duration_ms": 0, "commands": [], "reason": "",
                  "log": LOG, "log_truncated": False},
        "checks": [
            _tests_check("tests", suite),
            {"name": "lint", "kind": "findings", "status": "failed" if findings else "passed",
             "exit_code": 1 if findings else 0, "duration_ms": 40, "log": LOG,
             "log_truncated": False, "findings": list(findings),
             "counts": {"findings": len(findings)}},
        ],
        "acceptance": _tests_check("Acceptance tests", {ACCEPT_ID: accepted}),
    }  # fmt: skip


BASE = results({OLD_ID: "passed", ACCEPT_ID: "failed"}, "failed")
FIXES = results({OLD_ID: "passed", ACCEPT_ID: "passed"}, "passed", ["calc.py: F401 unused"])
BREAKS = results({OLD_ID: "failed", ACCEPT_ID: "failed"}, "failed")


def add_evidence(task: Task, *, a: dict | None, b: dict | None, failed: str = "") -> None:
    """Runs as the evidence job leaves them: the base commit's, then each candidate's (a
    side given None gets a FAILED run saying `failed`)."""
    Task.objects.filter(pk=task.pk).update(
        acceptance_tests=[{"path": ACCEPT_PATH, "content": "def test_zero():\n    assert 1\n"}]
    )
    base = EvidenceRun.objects.create(
        task=task, key=f"base-{task.pk}", recipe=RECIPE, recipe_digest=DIGEST,
        status=EvidenceRun.Status.SUCCEEDED, results=BASE,
    )  # fmt: skip
    for slot, found in (("A", a), ("B", b)):
        candidate = task.turns.get().candidates.get(slot=slot)
        EvidenceRun.objects.create(
            task=task, candidate=candidate, base_run=base, key=f"c-{candidate.pk}",
            recipe=RECIPE, recipe_digest=DIGEST, results=found, error=failed if not found else "",
            status=EvidenceRun.Status.SUCCEEDED if found else EvidenceRun.Status.FAILED,
        )  # fmt: skip
    # As the job does once the base run is done: each candidate's verdict is stored.
    evidence_services.evidence_record_verdicts(run=base)


@pytest.fixture
def accepted(ready_repository, project, contractor, reviewer):
    """Make an accepted task of one turn where A was preferred (-2)."""

    def make() -> Task:
        task = submit(
            generate_all(
                create_task(contractor=contractor, project=project, repository=ready_repository)
            ),
            preference=-2,
        )
        decide(task, reviewer=reviewer)
        return task

    return make


@pytest.fixture
def three(accepted) -> dict[str, Task]:
    """A preferred each time: the evidence agrees (A fixes, B breaks), disagrees (the other
    way round), or cannot tell (B's checks failed to run)."""
    tasks = {"agrees": accepted(), "disagrees": accepted(), "unknown": accepted()}
    add_evidence(tasks["agrees"], a=FIXES, b=BREAKS)
    add_evidence(tasks["disagrees"], a=BREAKS, b=FIXES)
    add_evidence(tasks["unknown"], a=FIXES, b=None, failed="The checks ran out of time.")
    return tasks


def ids(records) -> list[int]:
    return [r["task_id"] for r in records]


def test_each_candidate_carries_its_evidence_and_the_turn_whether_it_agrees(three):
    by_task = {r["task_id"]: r for r in native_records(ExportFilters())}
    record = by_task[three["agrees"].pk]
    a, b = record["candidates"]["A"]["evidence"], record["candidates"]["B"]["evidence"]
    assert (a["applied"], a["fixes"], a["breaks"], a["clean"]) == (True, 1, 0, True)
    assert (b["applied"], b["fixes"], b["breaks"], b["clean"]) == (True, 0, 1, False)
    assert a["status"] == "SUCCEEDED" and a["recipe"] == RECIPE and a["recipe_hash"] == DIGEST
    tests, lint = a["checks"]
    assert (tests["name"], tests["status"]) == ("tests", "passed")
    assert tests["counts"] == {"passed": 2, "failed": 0, "skipped": 0}
    assert (tests["delta"]["base_status"], tests["delta"]["fixes"], tests["delta"]["breaks"]) == (
        "failed", 1, 0,
    )  # fmt: skip
    assert (lint["status"], lint["delta"]["added"], lint["delta"]["removed"]) == ("failed", 1, 0)
    assert b["checks"][0]["delta"]["breaks"] == 1
    assert a["acceptance"] == [{"test": ACCEPT_ID, "outcome": "passed"}]
    assert b["acceptance"] == [{"test": ACCEPT_ID, "outcome": "failed"}]
    assert (a["acceptance_passed"], a["acceptance_total"]) == (1, 1)
    # A was preferred and A is the one that fixes without breaking.
    assert record["evidence_agrees"] is True
    assert by_task[three["disagrees"].pk]["evidence_agrees"] is False
    assert LOG not in json.dumps(record)


def test_a_run_that_failed_or_never_ran_gives_no_verdict(three, accepted):
    none = accepted()  # no recipe: no runs at all
    by_task = {r["task_id"]: r for r in native_records(ExportFilters())}
    unknown = by_task[three["unknown"].pk]
    b = unknown["candidates"]["B"]["evidence"]
    assert (b["status"], b["applied"], b["error"]) == (
        "FAILED",
        None,
        "The checks ran out of time.",
    )
    assert unknown["candidates"]["A"]["evidence"]["clean"] is True
    assert unknown["evidence_agrees"] is None
    assert by_task[none.pk]["candidates"]["A"]["evidence"] is None
    assert by_task[none.pk]["candidates"]["B"]["evidence"] is None
    assert by_task[none.pk]["evidence_agrees"] is None


def test_the_evidence_filter_keeps_agreeing_or_disagreeing_turns_and_says_what_it_left_out(
    three,
):
    assert ids(native_records(ExportFilters())) == sorted(t.pk for t in three.values())
    assert ids(native_records(ExportFilters(evidence="agrees"))) == [three["agrees"].pk]
    assert ids(native_records(ExportFilters(evidence="disagrees"))) == [three["disagrees"].pk]
    summary = write_export(io.BytesIO(), fmt="native", filters=ExportFilters(evidence="disagrees"))
    assert summary.records == 1
    assert summary.left_out == {exports.EVIDENCE_AGREES: 1, exports.NO_EVIDENCE_VERDICT: 1}


def test_other_formats_still_export_when_there_is_evidence(three):
    trl = [json.loads(line) for line in "".join(export_lines(fmt="trl")).splitlines()]
    assert len(trl) == 3 and "evidence" not in json.dumps(trl)
    rows = "".join(export_lines(fmt="csv", filters=ExportFilters(evidence="agrees")))
    assert len(rows.splitlines()) == 2  # the header and the agreeing turn


def test_the_command_the_api_and_the_job_carry_the_filter(three, admin_user, tmp_path, monkeypatch):
    use_own_export_folder(tmp_path, monkeypatch)
    out = tmp_path / "out.jsonl"
    call_command("export_dataset", "--evidence", "disagrees", "-o", str(out))
    assert [json.loads(line)["task_id"] for line in out.read_text().splitlines()] == [
        three["disagrees"].pk
    ]
    response = api_client_for(admin_user).post(
        reverse("api-exports"), {"format": "native", "evidence": "agrees"}, "json"
    )
    assert response.status_code == 202, response.content
    job = ExportJob.objects.get(pk=response.json()["id"])
    assert job.filters["evidence"] == "agrees"
    job = export_job_execute(job.pk)
    with job.file.open("rb") as handle:
        assert [json.loads(line)["task_id"] for line in handle] == [three["agrees"].pk]
    assert job.left_out == {exports.EVIDENCE_DISAGREES: 1, exports.NO_EVIDENCE_VERDICT: 1}


def test_a_bad_evidence_filter_is_refused_everywhere(db, admin_user, tmp_path):
    form = ExportForm({"format": "native", "evidence": "maybe"})
    assert not form.is_valid()
    assert "Unknown evidence filter maybe: use agrees or disagrees." in form.errors["evidence"]
    response = api_client_for(admin_user).post(
        reverse("api-exports"), {"format": "native", "evidence": "maybe"}, "json"
    )
    assert response.status_code == 400
    assert "Unknown evidence filter maybe" in response.json()["evidence"][0]
    page = Client()
    page.force_login(admin_user)
    refused = page.post(reverse("reviews:export"), {"format": "native", "evidence": "maybe"})
    assert refused.status_code == 400
    assert "Unknown evidence filter maybe" in refused.content.decode()
    assert not ExportJob.objects.exists()
    with pytest.raises(CommandError, match="Unknown evidence filter maybe"):
        call_command("export_dataset", "--evidence", "maybe", "-o", str(tmp_path / "x.jsonl"))
    with pytest.raises(ApplicationError, match="Unknown evidence filter 'maybe'"):
        ExportFilters(evidence="maybe")


def test_the_export_page_offers_the_evidence_filter(db, admin_user):
    page = Client()
    page.force_login(admin_user)
    html = page.get(reverse("reviews:export")).content.decode()
    assert 'name="evidence"' in html
    assert "Only where it disagrees (judgements to look at)" in html


def _export_queries() -> tuple[int, int, int]:
    """(records, queries, queries reading evidence runs) of a native export."""
    with CaptureQueriesContext(connection) as queries:
        records = list(native_records(ExportFilters(), chunk_size=500))
    reads = [q for q in queries.captured_queries if "tasks_evidencerun" in q["sql"]]
    return len(records), len(queries.captured_queries), len(reads)


def test_the_native_exports_queries_do_not_grow_with_the_records_carrying_evidence(accepted):
    first = accepted()
    add_evidence(first, a=FIXES, b=BREAKS)
    one = _export_queries()
    for _ in range(2):
        add_evidence(accepted(), a=BREAKS, b=FIXES)
    three = _export_queries()
    assert (one[0], three[0]) == (1, 3)
    # One read of the runs per chunk (base runs included): none per record or candidate.
    assert one[1:] == three[1:] == (one[1], 1)


def test_the_export_reads_each_runs_stored_verdict_never_its_logs_or_test_outcomes(three):
    with CaptureQueriesContext(connection) as queries:
        records = list(native_records(ExportFilters(), chunk_size=500))
    reads = [q["sql"] for q in queries.captured_queries if "tasks_evidencerun" in q["sql"]]
    assert len(reads) == 1
    assert '"tasks_evidencerun"."verdict"' in reads[0]
    assert '"tasks_evidencerun"."results"' not in reads[0]
    assert LOG not in json.dumps(records)
    # The verdict was stored when the base run finished, not computed by the export.
    run = EvidenceRun.objects.filter(candidate__isnull=False, status="SUCCEEDED").first()
    assert run.verdict["fixes"] is not None and run.is_clean is not None
