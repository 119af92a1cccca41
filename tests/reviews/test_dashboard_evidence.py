"""The dashboard's evidence figure: per model, the share of its candidates (with evidence)
that pass the acceptance tests and break no test that passed at the base commit."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from reviews import dashboard
from tasks import evidence_services
from tasks.models import EvidenceRun, Task
from tests.factories import ModelEndpointFactory, ProjectFactory
from tests.reviews.test_export_evidence import ACCEPT_PATH, BASE, BREAKS, DIGEST, FIXES, RECIPE
from tests.tasks.helpers import create_task, decide, generate_all, submit

UNAPPLIED = {"applied": False, "apply_error": "The change does not apply.", "checks": [],
             "acceptance": None, "setup": {"ok": True}}  # fmt: skip


def add_runs(task: Task, by_model: dict[str, dict | None], *, base_ok: bool = True) -> None:
    """Evidence runs of the task's one turn, by the candidates' model (None: a FAILED run)."""
    Task.objects.filter(pk=task.pk).update(
        acceptance_tests=[{"path": ACCEPT_PATH, "content": "def test_zero():\n    assert 1\n"}]
    )
    base = EvidenceRun.objects.create(
        task=task, key=f"base-{task.pk}", recipe=RECIPE, recipe_digest=DIGEST,
        status=EvidenceRun.Status.SUCCEEDED if base_ok else EvidenceRun.Status.FAILED,
        results=BASE if base_ok else None,
    )  # fmt: skip
    for candidate in task.turns.get().candidates.select_related("endpoint"):
        found = by_model[candidate.endpoint.name]
        EvidenceRun.objects.create(
            task=task, candidate=candidate, base_run=base, key=f"c-{candidate.pk}",
            recipe=RECIPE, recipe_digest=DIGEST, results=found,
            status=EvidenceRun.Status.SUCCEEDED if found else EvidenceRun.Status.FAILED,
        )  # fmt: skip
    # As the job does once the base run is done: each candidate's verdict is stored.
    evidence_services.evidence_record_verdicts(run=base)


@pytest.fixture
def boards(ready_repository, contractor, reviewer):
    careful, hasty = ModelEndpointFactory(name="careful"), ModelEndpointFactory(name="hasty")
    checked = ProjectFactory(name="Checked", endpoint_a=careful, endpoint_b=hasty)
    other = ProjectFactory(
        name="Unchecked",
        endpoint_a=ModelEndpointFactory(name="quiet"),
        endpoint_b=ModelEndpointFactory(name="silent"),
    )

    def task(project, *, accept: bool = True) -> Task:
        made = submit(
            generate_all(
                create_task(contractor=contractor, project=project, repository=ready_repository)
            )
        )
        if accept:
            decide(made, reviewer=reviewer)
        return made

    add_runs(task(checked), {"careful": FIXES, "hasty": BREAKS})
    add_runs(task(checked), {"careful": FIXES, "hasty": BREAKS})
    add_runs(task(checked), {"careful": FIXES, "hasty": FIXES})
    # A change that does not apply is evidence too: not clean.
    add_runs(task(checked), {"careful": BREAKS, "hasty": UNAPPLIED})
    # Not counted: the base commit's checks failed (nothing to compare with), a run failed,
    # and a task not accepted.
    add_runs(task(checked), {"careful": FIXES, "hasty": None}, base_ok=False)
    add_runs(task(checked, accept=False), {"careful": FIXES, "hasty": FIXES})
    task(other)  # no recipe: no evidence at all
    return {"checked": checked, "other": other}


def test_each_model_gets_its_share_of_clean_candidates_with_the_count(boards):
    board = dashboard.dashboard(samples=10)
    assert board.evidence_clean == {"careful": (3, 4), "hasty": (1, 4)}
    assert board.evidence_rows == [
        ("careful", "3 of 4 (75%)"), ("hasty", "1 of 4 (25%)"), ("quiet", "—"), ("silent", "—"),
    ]  # fmt: skip
    assert dashboard.dashboard(project=boards["other"], samples=10).evidence_rows == [
        ("quiet", "—"), ("silent", "—"),
    ]  # fmt: skip


def test_the_page_and_the_api_show_the_figure(client, boards, admin_user):
    client.force_login(admin_user)
    html = client.get(reverse("reviews:dashboard")).content.decode()
    assert '<tr data-model="careful"><td>careful</td><td>3 of 4 (75%)</td></tr>' in html
    assert '<tr data-model="quiet"><td>quiet</td><td>—</td></tr>' in html
    api = APIClient()
    api.force_authenticate(admin_user)
    data = api.get(reverse("api-dashboard")).json()
    assert data["evidence_clean"]["hasty"] == {"clean": 1, "total": 4, "share": 0.25}
    assert "quiet" not in data["evidence_clean"]


def _queries(**kwargs) -> list[dict]:
    with CaptureQueriesContext(connection) as queries:
        dashboard.dashboard(samples=10, **kwargs)
    return queries.captured_queries


def test_the_figure_costs_the_same_queries_whatever_the_number_of_runs(boards):
    with_runs = _queries(project=boards["checked"])
    without = _queries(project=boards["other"])
    assert len(with_runs) == len(without)
    # One grouped query over the stored verdicts, whatever the number of candidates.
    assert len([q for q in with_runs if "tasks_evidencerun" in q["sql"]]) == 1
