"""Evidence end to end: a real worker runs a real project's suite under bubblewrap.

The repository (tests/evidence_repo.py) is served by the loopback git server; setup creates
a venv and installs pytest and a dependency from the package index; the two candidates come
from the real generation path (real SDK clients talking to the fake model servers). One
candidate fixes the bug the contractor's hidden acceptance test checks, the other breaks an
existing test, and the page, the API and the native export all say so.
"""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from repos import services as repo_services
from tasks import evidence_services, services
from tasks.models import Candidate, CheckRecipe, EvidenceRun, Task
from tests import evidence_repo
from tests.api_clients import api_client_for
from tests.conftest import wait_for
from tests.factories import RepositoryFactory, pool_endpoints
from tests.fakes.model_servers import FakeAnthropicServer, FakeOpenAIServer, ok
from tests.tasks.helpers import vendor_project

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fake_models(monkeypatch):
    """alpha (the project's endpoint A) fixes the bug; beta (endpoint B) breaks a test."""
    # Set before the worker starts, so the worker process inherits the key variables.
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "sk-ant-test")
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-openai-test")
    with (
        FakeAnthropicServer(default=ok(evidence_repo.FIXING_ANSWER)) as alpha,
        FakeOpenAIServer(default=ok(evidence_repo.BREAKING_ANSWER)) as beta,
    ):
        yield alpha, beta


@pytest.fixture(autouse=True)
def _own_evidence_dir(settings, tmp_path):
    # An empty folder of this test's own, so the first setup really builds. autouse: it is
    # set up before celery_worker_process hands the setting to the worker.
    settings.MARLIN_EVIDENCE_DIR = tmp_path / "evidence"


@pytest.fixture
def wordy_repository(db, git_server, repo_cache_dir):
    evidence_repo.serve(git_server.root)
    repository = RepositoryFactory(
        full_name=evidence_repo.FULL_NAME,
        clone_url=f"{git_server.base_url}/{evidence_repo.FULL_NAME}.git",
    )
    shutil.rmtree(repo_services.repository_cache_path(repository), ignore_errors=True)
    repository.queue_clone()
    repo_services.repository_clone(repository_id=repository.pk)
    repository.refresh_from_db()
    assert repository.is_ready, repository.clone_error
    recipe = CheckRecipe(repository=repository, **evidence_repo.recipe_fields(identity=True))
    recipe.full_clean()
    recipe.save()
    return repository


class _SlotText(HTMLParser):
    """The text inside each element carrying data-evidence-slot, by slot."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr"}  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        self.texts: dict[str, list[str]] = {}
        self._open: list[tuple[str, int]] = []  # (slot, depth at which its element opened)
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        self._depth += 1
        slot = dict(attrs).get("data-evidence-slot")
        if slot is not None:
            self._open.append((slot, self._depth))
            self.texts.setdefault(slot, [])

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if self._open and self._open[-1][1] == self._depth:
            self._open.pop()
        self._depth -= 1

    def handle_data(self, data):
        for slot, _ in self._open:
            self.texts[slot].append(data)


def _evidence_texts(html: str) -> dict[str, str]:
    parser = _SlotText()
    parser.feed(html)
    return {slot: " ".join("".join(parts).split()) for slot, parts in parser.texts.items()}


def _judgement_post(project, *, better: str, worse: str) -> dict:
    # The scores agree with the preference, so the submit carries no contradiction warning.
    data = {"preference": "-2" if better == "A" else "2",
            "justification": f"{better} fixes the word count; {worse} breaks shout instead."}  # fmt: skip
    for slot, score in ((better, 4), (worse, 2)):
        for key in project.axis_keys:
            data[f"score_{slot}_{key}"] = str(score)
    return data


def test_evidence_tells_the_fixing_candidate_from_the_breaking_one(
    fake_models, celery_worker_process, wordy_repository, contractor, reviewer, tmp_path
):
    alpha, beta = fake_models
    project = vendor_project(alpha, beta)
    task = services.task_create(
        contractor=contractor, project=project, repository=wordy_repository, ref="",
        title="Count words once per run of whitespace", kind=Task.Kind.BUG_FIX,
        prompt=evidence_repo.PROMPT, acceptance_tests=evidence_repo.ACCEPTANCE_TESTS,
    )  # fmt: skip

    wait_for(
        lambda: Task.objects.get(pk=task.pk).status != Task.Status.GENERATING,
        timeout=90, message="both candidates",
    )  # fmt: skip
    task.refresh_from_db()
    assert task.status == Task.Status.AWAITING_PREFERENCE
    # Slots are drawn at random: the candidates are told apart by the model that wrote them.
    fixing = Candidate.objects.get(turn__task=task, endpoint=pool_endpoints(project)[0])
    breaking = Candidate.objects.get(turn__task=task, endpoint=pool_endpoints(project)[1])
    assert fixing.applies_cleanly and breaking.applies_cleanly
    assert "text.split()" in fixing.diff and "text.upper()\n" in breaking.diff
    # The acceptance tests are hidden from the models.
    assert alpha.requests and beta.requests
    for request in [*alpha.requests, *beta.requests]:
        assert "test_runs_of_whitespace" not in request.raw_body.decode()

    def runs_done() -> bool:
        runs = EvidenceRun.objects.filter(task=task)
        return runs.count() == 3 and all(run.is_terminal for run in runs)

    wait_for(runs_done, timeout=420, interval=1, message="the base run and both candidates' runs")
    runs = list(EvidenceRun.objects.filter(task=task))
    assert [run.status for run in runs] == ["SUCCEEDED"] * 3, [(r.error, r.results) for r in runs]
    # One base run for the task, shared by both candidates.
    base = EvidenceRun.objects.get(task=task, candidate=None)
    assert {run.base_run_id for run in runs if run.candidate_id} == {base.pk}
    # Setup (venv + pip from the package index) was built once; the other two runs reused it.
    setups = sorted((run.results["setup"] for run in runs), key=lambda setup: setup["cached"])
    assert [setup["cached"] for setup in setups] == [False, True, True]
    built = setups[0]
    assert [c["status"] for c in built["commands"]] == ["passed"] * 3
    assert built["duration_ms"] > 0

    evidence = {
        candidate.slot: evidence_services.candidate_evidence(candidate)
        for candidate in (fixing, breaking)
    }
    fix_summary = evidence[fixing.slot]["summary"]
    break_summary = evidence[breaking.slot]["summary"]
    assert (fix_summary["fixes"], fix_summary["breaks"]) == (1, 0)
    assert (break_summary["fixes"], break_summary["breaks"]) == (0, 1)
    assert fix_summary["acceptance"] == [
        {"test": evidence_repo.ACCEPTANCE_TEST_ID, "outcome": "passed"}
    ]
    assert break_summary["acceptance"] == [
        {"test": evidence_repo.ACCEPTANCE_TEST_ID, "outcome": "failed"}
    ]
    assert (fix_summary["acceptance_passed"], break_summary["acceptance_passed"]) == (1, 0)
    # The suite itself: the dependency imported (test_report passed) everywhere; the
    # breaking change failed test_shout, which passed at the pinned commit.
    base_tests = base.results["checks"][0]["tests"]
    assert base_tests["tests.test_report::test_report_is_toml"] == "passed"
    assert base_tests[evidence_repo.BROKEN_TEST_ID] == "passed"
    assert base_tests[evidence_repo.ACCEPTANCE_TEST_ID] == "failed"
    tests_check = {c["name"]: c for c in break_summary["checks"]}["tests"]
    assert tests_check["status"] == "failed" and tests_check["delta"]["breaks"] == 1

    # Setup and checks ran in bubblewrap, as an unprivileged sandbox uid (one of the pool
    # from MARLIN_SANDBOX_UID on, never the worker's root) with no_new_privs.
    sandbox_log = {c["name"]: c for c in fix_summary["checks"]}["sandbox"]["log"]
    uids = [int(uid) for uid in re.findall(r"^(?:setup|check) uid: (\d+)$", sandbox_log, re.M)]
    assert len(uids) == 2 and min(uids) >= settings.MARLIN_SANDBOX_UID, sandbox_log
    assert len(re.findall(r"NoNewPrivs:\s+1", sandbox_log)) == 2, sandbox_log
    assert re.search(r"^pid 1: \S*/bwrap$", sandbox_log, re.MULTILINE), sandbox_log

    # The page, the API and the export say the same.
    carol = Client()
    carol.force_login(contractor)
    page = carol.get(reverse("tasks:detail", args=[task.pk]))
    assert page.status_code == 200
    texts = _evidence_texts(page.content.decode())
    assert "fixes 1, breaks 0" in texts.get(fixing.slot, ""), texts
    assert "fixes 0, breaks 1" in texts.get(breaking.slot, ""), texts

    api = api_client_for(contractor).get(reverse("api-task", args=[task.pk]))
    assert api.status_code == 200
    by_slot = {c["slot"]: c for c in api.json()["turns"][0]["candidates"]}
    for candidate, figures in ((fixing, (1, 0)), (breaking, (0, 1))):
        summary = by_slot[candidate.slot]["evidence"]["summary"]
        assert (summary["fixes"], summary["breaks"]) == figures

    response = carol.post(
        reverse("tasks:submit", args=[task.pk]),
        _judgement_post(project, better=fixing.slot, worse=breaking.slot),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    rita = Client()
    rita.force_login(reviewer)
    rita.post(reverse("reviews:claim", args=[task.pk]))
    # The reviewer sees the same evidence as the contractor.
    review_page = rita.get(reverse("reviews:detail", args=[task.pk]))
    assert review_page.status_code == 200
    texts = _evidence_texts(review_page.content.decode())
    assert "fixes 1, breaks 0" in texts.get(fixing.slot, ""), texts
    assert "fixes 0, breaks 1" in texts.get(breaking.slot, ""), texts
    rita.post(reverse("reviews:decide", args=[task.pk]), {"decision": "ACCEPT", "feedback": ""})
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED

    out = tmp_path / "export.jsonl"
    call_command("export_dataset", "--project", project.name, "-o", str(out))
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    for candidate, figures in ((fixing, (1, 0)), (breaking, (0, 1))):
        exported = record["candidates"][candidate.slot]["evidence"]
        assert (exported["fixes"], exported["breaks"]) == figures
        assert exported["recipe_hash"] == base.recipe_digest
