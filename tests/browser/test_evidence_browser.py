"""Evidence in a real browser: the block polls while the checks run and stops once they are
done; a log loads when opened and is shown as text, never run as markup."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tasks.models import Candidate, EvidenceRun
from tests.browser.workspace_steps import open_workspace
from tests.tasks.test_evidence_page import BASE, BREAKING, FIXING

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOSTILE = '<img src="x" onerror="window.__pwned = 1">'


def _runs(task, *, status: str) -> tuple[EvidenceRun, dict[str, Candidate]]:
    candidates = {c.slot: c for c in Candidate.objects.filter(turn__task=task)}
    done = status == EvidenceRun.Status.SUCCEEDED
    base = EvidenceRun.objects.create(task=task, key="base", recipe={}, recipe_digest="d",
                                      status=status, results=BASE if done else None)  # fmt: skip
    breaking = {**BREAKING, "checks": [{**BREAKING["checks"][0], "log": HOSTILE + " FAILED"},
                                       *BREAKING["checks"][1:]]}  # fmt: skip
    for slot, results in (("A", FIXING), ("B", breaking)):
        EvidenceRun.objects.create(
            task=task, candidate=candidates[slot], base_run=base, key=slot, recipe={},
            recipe_digest="d", status=status, results=results if done else None,
        )  # fmt: skip
    return base, candidates


def test_pending_evidence_turns_into_figures_without_a_reload(log_in, contractor, ready_task):
    base, candidates = _runs(ready_task, status=EvidenceRun.Status.RUNNING)
    page = open_workspace(log_in, contractor, ready_task)
    block_a = page.locator('[data-evidence-slot="A"]')
    expect(block_a).to_contain_text("running the checks")
    page.evaluate("window.__notReloaded = true")
    EvidenceRun.objects.filter(pk=base.pk).update(status="SUCCEEDED", results=BASE)
    for slot, results in (("A", FIXING), ("B", BREAKING)):
        EvidenceRun.objects.filter(candidate=candidates[slot]).update(
            status="SUCCEEDED", results=results
        )
    expect(block_a.locator(".evidence-headline")).to_have_text("fixes 1, breaks 0")
    expect(page.locator('[data-evidence-slot="B"] .evidence-headline')).to_have_text(
        "fixes 0, breaks 1"
    )
    # Swapped in place (the judgement typed meanwhile is not lost), and polling stopped.
    assert page.evaluate("window.__notReloaded") is True
    expect(block_a).not_to_have_attribute("hx-trigger", "every 3s")


def test_a_log_opens_as_text(log_in, contractor, ready_task):
    _runs(ready_task, status=EvidenceRun.Status.SUCCEEDED)
    page = open_workspace(log_in, contractor, ready_task)
    check = page.locator('[data-evidence-slot="B"] [data-check="unit tests"]')
    check.locator("summary").click()
    log = check.locator(".evidence-log-text")
    expect(log).to_contain_text(HOSTILE + " FAILED")
    expect(check.locator(".evidence-log-note")).to_have_text("log truncated to its last 64 KB")
    assert page.evaluate("window.__pwned") is None
    expect(check.locator("img")).to_have_count(0)
