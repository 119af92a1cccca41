"""tasks/evidence_services.py: queueing, running (in the real sandbox) and reading evidence.

The repository carries its own tiny test runner that writes JUnit XML, so these tests need
no package index; the worker path and pip-based setup are tested in tests/test_evidence_worker.py.
"""

from __future__ import annotations

import difflib
import shutil
from datetime import timedelta

import pytest
from django.utils import timezone

from marlin.exceptions import ApplicationError, InvalidTransition
from repos import git_client
from repos import services as repo_services
from tasks import evidence_services, generation_services
from tasks.models import Candidate, CheckRecipe, EvidenceRun, Task
from tests.factories import RepositoryFactory, pool_endpoints
from tests.tasks.helpers import create_task, generate_all

OPS = "def add(a, b):\n    return a + b\n\n\ndef div(a, b):\n    return a / b\n"
RUNNER = """import importlib, pathlib, sys
from xml.sax.saxutils import quoteattr

cases = []
for path in sys.argv[2:]:
    module = importlib.import_module(path[:-3].replace("/", "."))
    for name in sorted(n for n in dir(module) if n.startswith("test_")):
        try:
            getattr(module, name)()
            cases.append((module.__name__, name, ""))
        except Exception as exc:
            cases.append((module.__name__, name, repr(exc)))
xml = "".join(
    f"<testcase classname={quoteattr(c)} name={quoteattr(n)}>"
    + (f"<failure message={quoteattr(e)}/>" if e else "") + "</testcase>"
    for c, n, e in cases
)
pathlib.Path(sys.argv[1]).write_text(f"<testsuite>{xml}</testsuite>")
print(f"{len(cases)} tests, {sum(1 for *_, e in cases if e)} failed")
sys.exit(1 if any(e for *_, e in cases) else 0)
"""
LINT = """import pathlib
for path in sorted(pathlib.Path("calc").glob("*.py")):
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if len(line) > 40:
            print(f"{path}:{number}:1: W100 line longer than 40")
"""
FILES = {
    "calc/__init__.py": "",
    "calc/ops.py": OPS,
    "tests/__init__.py": "",
    "tests/test_ops.py": (
        "from calc.ops import add, div\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\n"
        "def test_div():\n    assert div(6, 3) == 2\n"
    ),
    "runner.py": RUNNER,
    "lint.py": LINT,
}
ACCEPTANCE = [
    {
        "path": "tests/test_accept.py",
        "content": "from calc.ops import div\n\n\ndef test_div_by_zero():\n    assert div(1, 0) is None\n",
    }
]


def _diff(new_ops: str) -> str:
    lines = difflib.unified_diff(
        OPS.splitlines(keepends=True), new_ops.splitlines(keepends=True),
        "a/calc/ops.py", "b/calc/ops.py",
    )  # fmt: skip
    return "".join(lines)


FIXING = _diff(
    OPS.replace("    return a / b\n", "    if b == 0:\n        return None\n    return a / b\n")
)
BREAKING = _diff(
    OPS.replace(
        "    return a + b\n", "    # subtracting is what the long comment wants\n    return a - b\n"
    )
)


@pytest.fixture
def evidence_dir(settings, tmp_path):
    settings.MARLIN_EVIDENCE_DIR = tmp_path / "evidence"
    return settings.MARLIN_EVIDENCE_DIR


@pytest.fixture
def checked_repository(db, git_server, repo_cache_dir):
    repository = RepositoryFactory(full_name="demo/evcalc")
    git_client.create_bare_repository(git_server.root / "demo" / "evcalc.git", FILES,
                                      message="calc")  # fmt: skip
    repository.clone_url = f"{git_server.base_url}/demo/evcalc.git"
    repository.save()
    shutil.rmtree(repo_services.repository_cache_path(repository), ignore_errors=True)
    repository.queue_clone()
    repo_services.repository_clone(repository_id=repository.pk)
    repository.refresh_from_db()
    assert repository.is_ready, repository.clone_error
    return repository


def _recipe(repository, **fields) -> CheckRecipe:
    recipe = CheckRecipe(
        repository=repository,
        checks=[
            {"name": "unit tests", "kind": "tests",
             "command": ["python3", "runner.py", "{report}", "tests/test_ops.py"],
             "timeout_seconds": 60},
            {"name": "lint", "kind": "findings", "command": ["python3", "lint.py"]},
        ],
        acceptance_command=["python3", "runner.py", "{report}", "{files}"],
        **fields,
    )  # fmt: skip
    recipe.full_clean()
    recipe.save()
    return recipe


@pytest.fixture
def judged_turn(checked_repository, contractor, project, evidence_dir):
    """A task whose two candidates are ready, with a recipe and an acceptance test."""
    _recipe(checked_repository)
    task = create_task(contractor=contractor, project=project, repository=checked_repository)
    Task.objects.filter(pk=task.pk).update(acceptance_tests=ACCEPTANCE)
    generate_all(task)
    return task.turns.get()


def _collect_all(task: Task) -> None:
    for run in EvidenceRun.objects.filter(task=task, status=EvidenceRun.Status.QUEUED):
        evidence_services.evidence_collect(run_id=run.pk, job_id=f"job-{run.pk}")


def _with_diffs(turn, *, a: str, b: str) -> dict[str, Candidate]:
    for slot, diff in (("A", a), ("B", b)):
        Candidate.objects.filter(turn=turn, slot=slot).update(diff=diff)
    evidence_services.evidence_request(turn=turn)
    _collect_all(turn.task)
    return {c.slot: c for c in turn.candidates.all()}


def test_a_ready_turn_queues_one_run_per_candidate_and_one_shared_base_run(judged_turn):
    runs = EvidenceRun.objects.filter(task=judged_turn.task)
    assert runs.count() == 3
    assert runs.filter(candidate__isnull=True).count() == 1
    base = runs.get(candidate__isnull=True)
    assert set(runs.exclude(pk=base.pk).values_list("base_run", flat=True)) == {base.pk}
    assert set(runs.values_list("status", flat=True)) == {EvidenceRun.Status.QUEUED}
    # Asking again changes nothing that is still current.
    before = list(runs.values_list("pk", "key", "updated_at"))
    evidence_services.evidence_request(turn=judged_turn)
    assert list(runs.values_list("pk", "key", "updated_at")) == before


def test_the_fixing_and_the_breaking_change_are_told_apart(judged_turn):
    candidates = _with_diffs(judged_turn, a=FIXING, b=BREAKING)
    good = evidence_services.candidate_evidence(candidates["A"])
    bad = evidence_services.candidate_evidence(candidates["B"])
    assert good["state"] == bad["state"] == "ready"
    assert (good["summary"]["fixes"], good["summary"]["breaks"]) == (1, 0)
    assert (bad["summary"]["fixes"], bad["summary"]["breaks"]) == (0, 1)
    assert good["summary"]["acceptance"] == [
        {"test": "tests.test_accept::test_div_by_zero", "outcome": "passed"}
    ]
    assert bad["summary"]["acceptance_passed"] == 0
    lint = {c["name"]: c for c in bad["summary"]["checks"]}["lint"]
    # The breaking change added one line over 40 characters.
    assert lint["delta"] == {"base_status": "passed", "added": 1, "removed": 0}
    unit = {c["name"]: c for c in bad["summary"]["checks"]}["unit tests"]
    assert unit["status"] == "failed" and unit["delta"]["breaks"] == 1
    assert "1 failed" in unit["log"]


def test_the_base_run_is_shared_by_later_turns_and_not_run_again(judged_turn):
    _with_diffs(judged_turn, a=FIXING, b=BREAKING)
    base = EvidenceRun.objects.get(task=judged_turn.task, candidate__isnull=True)
    assert base.status == EvidenceRun.Status.SUCCEEDED
    finished = base.finished_at
    evidence_services.evidence_request(turn=judged_turn)
    base.refresh_from_db()
    assert base.status == EvidenceRun.Status.SUCCEEDED and base.finished_at == finished


def test_a_change_that_does_not_apply_is_recorded_as_not_applied(judged_turn):
    broken = FIXING.replace("return a / b", "return a // b", 1)
    candidates = _with_diffs(judged_turn, a=broken, b=BREAKING)
    shown = evidence_services.candidate_evidence(candidates["A"])
    assert shown["state"] == "ready"
    assert shown["summary"]["applied"] is False
    assert shown["apply_error"]


def test_a_second_job_for_the_same_run_does_nothing(judged_turn):
    run = EvidenceRun.objects.filter(task=judged_turn.task, candidate__isnull=False).first()
    EvidenceRun.objects.filter(pk=run.pk).update(status=EvidenceRun.Status.RUNNING, job_id="first")
    assert evidence_services.evidence_collect(run_id=run.pk, job_id="second") is None
    run.refresh_from_db()
    assert run.status == EvidenceRun.Status.RUNNING and run.job_id == "first"


def test_a_failing_setup_fails_the_run_with_its_reason_and_is_not_rebuilt_per_job(
    checked_repository, contractor, project, evidence_dir
):
    _recipe(checked_repository,
            setup_commands=[["python3", "-c", "import sys; print('no index'); sys.exit(3)"]])  # fmt: skip
    task = create_task(contractor=contractor, project=project, repository=checked_repository)
    generate_all(task)
    _collect_all(task)
    runs = EvidenceRun.objects.filter(task=task)
    assert set(runs.values_list("status", flat=True)) == {EvidenceRun.Status.FAILED}
    assert set(runs.values_list("error", flat=True)) == {"Setup command 1 failed (exit status 3)."}
    # Built once; the two later jobs read the remembered failure.
    assert [r.results["setup"]["cached"] for r in runs.order_by("started_at")] == [
        False,
        True,
        True,
    ]
    candidate = Candidate.objects.filter(turn__task=task).first()
    shown = evidence_services.candidate_evidence(candidate)
    assert shown["state"] == "failed"
    assert "no index" in shown["setup"]["log"]


def test_without_a_recipe_or_a_sandbox_nothing_is_queued_and_the_page_says_why(
    checked_repository, contractor, project, evidence_dir, settings
):
    task = create_task(contractor=contractor, project=project, repository=checked_repository)
    generate_all(task)
    candidate = Candidate.objects.filter(turn__task=task).first()
    assert not EvidenceRun.objects.filter(task=task).exists()
    assert evidence_services.candidate_evidence(candidate)["state"] == "none"

    _recipe(checked_repository)
    settings.MARLIN_SANDBOX_BWRAP = "bwrap-is-not-installed"
    assert evidence_services.evidence_request(turn=task.turns.get()) == []
    shown = evidence_services.candidate_evidence(candidate)
    assert shown["state"] == "off"
    assert "apt-get install bubblewrap" in shown["admin_reason"]


def test_a_run_whose_job_finds_the_sandbox_gone_fails_rather_than_running_unsandboxed(
    judged_turn, settings
):
    settings.MARLIN_SANDBOX_BWRAP = "bwrap-is-not-installed"
    run = EvidenceRun.objects.filter(task=judged_turn.task).first()
    evidence_services.evidence_collect(run_id=run.pk, job_id="j")
    run.refresh_from_db()
    assert run.status == EvidenceRun.Status.FAILED
    assert "bubblewrap" in run.error and "never run unsandboxed" in run.error
    assert run.results is None


def test_a_regenerated_candidate_gets_its_checks_run_again(judged_turn):
    candidates = _with_diffs(judged_turn, a=FIXING, b=FIXING)
    run = EvidenceRun.objects.get(candidate=candidates["B"])
    assert run.status == EvidenceRun.Status.SUCCEEDED
    Candidate.objects.filter(pk=candidates["B"].pk).update(diff=BREAKING)
    evidence_services.evidence_request(turn=judged_turn)
    run.refresh_from_db()
    assert run.status == EvidenceRun.Status.QUEUED and run.results is None


def test_only_the_contractor_may_run_failed_checks_again(judged_turn, other_contractor):
    candidate = judged_turn.candidates.get(slot="A")
    with pytest.raises(ApplicationError, match="Only checks that failed"):
        evidence_services.evidence_retry(candidate=candidate, by=judged_turn.task.contractor)
    run = EvidenceRun.objects.get(candidate=candidate)
    run.fail(reason="The checks took longer than this server allows.")
    with pytest.raises(ApplicationError, match="Only the task's contractor"):
        evidence_services.evidence_retry(candidate=candidate, by=other_contractor)
    evidence_services.evidence_retry(candidate=candidate, by=judged_turn.task.contractor)
    run.refresh_from_db()
    assert run.status == EvidenceRun.Status.QUEUED and run.error == ""


def test_the_reaper_sends_lost_runs_again_and_gives_up_after_three_attempts(judged_turn):
    now = timezone.now()
    runs = list(EvidenceRun.objects.filter(task=judged_turn.task, candidate__isnull=False))
    long_ago = now - timedelta(hours=2)
    EvidenceRun.objects.filter(pk=runs[0].pk).update(
        status=EvidenceRun.Status.RUNNING, job_id="dead", started_at=long_ago, attempts=1
    )
    EvidenceRun.objects.filter(pk=runs[1].pk).update(
        status=EvidenceRun.Status.RUNNING, job_id="dead", started_at=long_ago, attempts=3
    )
    assert evidence_services.evidence_reap_stale(now=now) == {"sent": 1, "failed": 1}
    first, second = (EvidenceRun.objects.get(pk=r.pk) for r in runs)
    assert first.status == EvidenceRun.Status.QUEUED and first.job_id == ""
    assert second.status == EvidenceRun.Status.FAILED
    assert "several times" in second.error


def test_a_turn_that_failed_to_generate_queues_no_evidence(judged_turn):
    # turn_settle asks for evidence only once every candidate succeeded.
    task = judged_turn.task
    EvidenceRun.objects.filter(task=task).delete()
    Task.objects.filter(pk=task.pk).update(status=Task.Status.GENERATING)
    Candidate.objects.filter(turn=judged_turn, slot="B").update(status=Candidate.Status.FAILED)
    generation_services.turn_settle(turn_id=judged_turn.pk)
    assert Task.objects.get(pk=task.pk).status == Task.Status.GENERATION_FAILED
    assert not EvidenceRun.objects.filter(task=task).exists()


def test_logs_never_name_a_model(checked_repository, contractor, project, evidence_dir):
    own_name = pool_endpoints(project)[0].name
    CheckRecipe.objects.create(
        repository=checked_repository,
        checks=[{"name": "talks", "kind": "status",
                 "command": ["python3", "-c", f"print('made by Claude, via {own_name}')"]}],
    )  # fmt: skip
    task = create_task(contractor=contractor, project=project, repository=checked_repository)
    generate_all(task)
    _collect_all(task)
    candidate = Candidate.objects.filter(turn__task=task).first()
    shown = evidence_services.candidate_evidence(candidate)
    log = shown["summary"]["checks"][0]["log"]
    assert "made by [model], via [model]" in log
    assert "Claude" not in log and own_name not in log


def test_the_verdict_is_stored_whichever_of_the_base_and_the_candidate_finishes_last(judged_turn):
    for slot, diff in (("A", FIXING), ("B", BREAKING)):
        Candidate.objects.filter(turn=judged_turn, slot=slot).update(diff=diff)
    evidence_services.evidence_request(turn=judged_turn)
    runs = EvidenceRun.objects.filter(task=judged_turn.task)
    base = runs.get(candidate__isnull=True)
    # A's run finishes first: the base is still to run, so A has no verdict yet.
    first = runs.get(candidate__slot="A")
    evidence_services.evidence_collect(run_id=first.pk, job_id="a")
    first.refresh_from_db()
    assert first.status == EvidenceRun.Status.SUCCEEDED and first.verdict is None
    evidence_services.evidence_collect(run_id=base.pk, job_id="base")
    first.refresh_from_db()
    assert (first.verdict["fixes"], first.verdict["breaks"], first.is_clean) == (1, 0, True)
    # B's run finishes after the base: it stores its own verdict.
    second = runs.get(candidate__slot="B")
    evidence_services.evidence_collect(run_id=second.pk, job_id="b")
    second.refresh_from_db()
    assert (second.verdict["fixes"], second.verdict["breaks"], second.is_clean) == (0, 1, False)


def test_a_redelivered_job_does_not_take_over_a_run_that_finished_meanwhile(
    ready_repository, project, contractor
):
    """The takeover of a job's own RUNNING row is guarded by its status too: a copy read
    while the run was RUNNING, claimed again after the run finished under the same job id,
    is refused and leaves the finished row as it was."""
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    run = EvidenceRun.objects.create(task=task, key="k", recipe={}, recipe_digest="d" * 64)
    run.claim(job_id="job-1")
    stale = EvidenceRun.objects.get(pk=run.pk)
    run.succeed(results={"tests": []}, job_id="job-1")
    with pytest.raises(InvalidTransition):
        stale.claim(job_id="job-1")
    run.refresh_from_db()
    assert (run.status, run.attempts) == (EvidenceRun.Status.SUCCEEDED, 1)
