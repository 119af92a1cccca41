"""The whole thin slice in a real browser: clone, task, judgement, bounce, revision, accept, export."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

from tasks.models import Judgement, Task
from tests.factories import pool_endpoints

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CLONE_TIMEOUT_MS = 60_000
GENERATION_TIMEOUT_MS = 60_000
TITLE = "Guard division by zero"
PROMPT = "calc.ops.div raises ZeroDivisionError; return None instead and add a test."
FIRST_JUSTIFICATION = "A guards the division and keeps the API; B does not."
SECOND_JUSTIFICATION = "B divides without a guard and will crash on zero input; A returns None."
FEEDBACK = "Say why B's change is unsafe."


def _fill_judgement(page: Page, project, *, preference_label: str, justification: str) -> None:
    form = page.locator("form#judgement")
    expect(form).to_be_visible()
    for slot, score in (("A", 4), ("B", 2)):
        for axis in project.axis_keys:
            form.locator(
                f'input[type="radio"][name="score_{slot}_{axis}"][value="{score}"]'
            ).check()
    form.get_by_label(preference_label, exact=True).check()
    form.get_by_label("Justification").fill(justification)
    assert len(justification) >= project.min_justification_chars
    form.get_by_role("button", name="Submit for review").click()


def _review(page: Page, task: Task, *, decision: str, feedback: str = "") -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Review queue").click()
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    page.get_by_role("link", name=f"#{task.pk} {task.title}").click()
    expect(page).to_have_url(re.compile(rf"/reviews/tasks/{task.pk}/$"))
    page.get_by_role("button", name="Claim to review").click()
    form = page.locator("form#review-form")
    form.get_by_label(decision, exact=True).check()
    if feedback:
        form.get_by_label("General feedback").fill(feedback)
    form.get_by_role("button", name="Record decision").click()
    verb = {"Accept": "accepted", "Bounce": "bounced"}[decision]
    expect(page.get_by_role("status")).to_contain_text(f"Task #{task.pk} {verb}.")


def test_a_task_is_cloned_judged_bounced_revised_accepted_and_exported_in_a_real_browser(
    celery_worker_process,
    log_in,
    served_repository,
    project,
    contractor,
    reviewer,
    admin_user,
    tmp_path,
):
    # 1. The contractor clones the repository, writes a task and judges the two candidates.
    carol = log_in(contractor)
    carol.goto(f"/repos/{served_repository.pk}/")
    clone_status = carol.locator("#clone-status strong.status")
    expect(clone_status).to_have_attribute("data-status", "NOT_CLONED")
    carol.get_by_role("button", name="Clone", exact=True).click()
    expect(clone_status).to_have_attribute("data-status", "READY", timeout=CLONE_TIMEOUT_MS)
    expect(clone_status).to_have_text("Ready")

    carol.get_by_role("link", name="Start a task on this repository").click()
    expect(carol.get_by_role("heading", name="New task")).to_be_visible()
    expect(carol.get_by_label("Repository")).to_have_value(str(served_repository.pk))
    carol.get_by_label("Project").select_option(label=project.name)
    expect(carol.get_by_label("Branch, tag or commit")).to_have_value("")
    carol.get_by_label("Title").fill(TITLE)
    carol.get_by_label("Kind").select_option(label="Bug fix")
    carol.get_by_label("Prompt").fill(PROMPT)
    carol.get_by_role("button", name="Create task and generate").click()

    expect(carol).to_have_url(re.compile(r"/tasks/\d+/$"))
    task = Task.objects.get(contractor=contractor)
    assert carol.url.endswith(f"/tasks/{task.pk}/")
    expect(carol.get_by_role("heading", name=f"#{task.pk} {TITLE}")).to_be_visible()

    # htmx polls the candidates every 2 s and reloads the page once generation is over.
    candidates = carol.locator("article.candidate")
    expect(candidates).to_have_count(2)
    for slot in ("A", "B"):
        status = carol.locator(f'article.candidate[data-slot="{slot}"] span.status')
        expect(status).to_have_attribute("data-status", "SUCCEEDED", timeout=GENERATION_TIMEOUT_MS)
        expect(status).to_have_text("Ready")
    task_status = carol.locator("#task-status")
    expect(task_status).to_have_attribute(
        "data-status", "AWAITING_PREFERENCE", timeout=GENERATION_TIMEOUT_MS
    )
    # The contractor sees the work, never which model produced it.
    expect(candidates.locator(":scope > div.diff")).to_have_count(2)
    expect(carol.locator("main")).not_to_contain_text(pool_endpoints(project)[0].name)
    expect(carol.locator("main")).not_to_contain_text(pool_endpoints(project)[1].name)

    _fill_judgement(carol, project, preference_label="A better", justification=FIRST_JUSTIFICATION)
    expect(task_status).to_have_text("Submitted for review")
    expect(carol.locator("form#judgement")).to_have_count(0)

    # 2. The reviewer bounces it with feedback.
    rita = log_in(reviewer)
    _review(rita, task, decision="Bounce", feedback=FEEDBACK)
    expect(rita.get_by_role("link", name=f"#{task.pk} {TITLE}")).to_have_count(0)

    # 3. The contractor reads the feedback, revises the judgement and resubmits.
    carol.reload()
    expect(task_status).to_have_text("Bounced")
    expect(carol.locator("section.feedback")).to_contain_text(FEEDBACK)
    carol.get_by_role("button", name="Revise and resubmit").click()
    expect(task_status).to_have_attribute("data-status", "AWAITING_PREFERENCE")
    expect(carol.locator("p.meta")).to_contain_text("round 2")
    # The revision starts from the first round's judgement.
    expect(carol.get_by_label("Justification")).to_have_value(FIRST_JUSTIFICATION)
    expect(carol.get_by_label("A better", exact=True)).to_be_checked()
    _fill_judgement(
        carol, project, preference_label="A much better", justification=SECOND_JUSTIFICATION
    )
    expect(task_status).to_have_text("Submitted for review")

    # 4. The reviewer accepts the revision.
    _review(rita, task, decision="Accept")

    # 5. The admin downloads the project's dataset.
    ada = log_in(admin_user)
    ada.get_by_role("navigation", name="Main").get_by_role("link", name="Export").click()
    expect(ada.get_by_role("heading", name="Export preference dataset")).to_be_visible()
    ada.get_by_label("Project").select_option(label=project.name)
    ada.get_by_role("button", name="Start export").click()
    # The export runs on the worker; the page follows its progress until the file is ready.
    expect(ada.locator("#export-status")).to_have_text("Ready", timeout=30_000)
    expect(ada.locator("#export-count")).to_contain_text("1 of 1 judged turns")
    with ada.expect_download() as download_info:
        ada.get_by_role("link", name="Download").click()
    download = download_info.value
    assert download.failure() is None
    assert download.suggested_filename.endswith(".jsonl")
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert len(records) == 1, records
    assert records[0]["task_id"] == task.pk
    assert records[0]["preference"] == -3  # "A much better", the second round's choice

    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED
    assert task.round == 2
    assert list(Judgement.objects.filter(turn__task=task).values_list("round", "preference")) == [
        (1, -2),
        (2, -3),
    ]
