"""The judge page: autosaved drafts, consistency warnings, active time, constant queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tasks import services
from tasks.models import Candidate, Judgement, JudgementDraft, Task
from tests.tasks.helpers import create_task, generate_all, valid_scores


@pytest.fixture
def judged_task(ready_repository, project, contractor):
    return generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )


def _form(
    project,
    *,
    preference: int,
    a: int,
    b: int,
    text: str = "A guards the zero divisor; B does not.",
) -> dict:
    data = {"preference": str(preference), "justification": text, "action": "submit"}
    for slot, value in (("A", a), ("B", b)):
        for key in project.axis_keys:
            data[f"score_{slot}_{key}"] = str(value)
    return data


def test_a_draft_is_saved_and_restored_after_a_reload(client, judged_task, contractor):
    client.force_login(contractor)
    url = reverse("tasks:draft", args=[judged_task.pk])
    data = {
        "preference": "-1",
        "justification": "Half-written thoughts about A",
        "score_A_security": "4",
    }
    assert client.post(url, data).status_code == 204
    assert client.post(url, data).status_code == 204  # saving the same twice is harmless
    draft = JudgementDraft.objects.get()
    assert draft.data["justification"] == "Half-written thoughts about A"
    page = client.get(reverse("tasks:detail", args=[judged_task.pk])).content.decode()
    assert "Half-written thoughts about A" in page
    assert 'name="score_A_security" value="4" ' in page and "checked" in page
    assert not Judgement.objects.exists()  # a draft is not a judgement


def test_a_draft_keeps_only_the_forms_fields(judged_task, contractor):
    services.judgement_draft_save(
        task=judged_task, by=contractor, data={"justification": "x" * 50_000, "evil": "1"}
    )
    data = JudgementDraft.objects.get().data
    assert set(data) == {"justification"} and len(data["justification"]) == 20_000


def test_drafts_of_other_peoples_tasks_are_refused(client, judged_task, other_contractor):
    client.force_login(other_contractor)
    assert (
        client.post(reverse("tasks:draft", args=[judged_task.pk]), {"preference": "1"}).status_code
        == 404
    )
    assert not JudgementDraft.objects.exists()


def test_a_contradiction_must_be_confirmed(client, judged_task, contractor):
    client.force_login(contractor)
    url = reverse("tasks:submit", args=[judged_task.pk])
    contradiction = _form(judged_task.project, preference=-2, a=2, b=4)
    response = client.post(url, contradiction)
    assert response.status_code == 400
    assert "You prefer A, but B&#x27;s scores add up higher (16 vs 8)." in response.content.decode()
    judged_task.refresh_from_db()
    assert judged_task.status == Task.Status.AWAITING_PREFERENCE
    assert not Judgement.objects.exists()
    # A hidden field cannot confirm: only the "anyway" button's ?confirm=1 does.
    assert client.post(url, {**contradiction, "confirm_warnings": "on"}).status_code == 400
    response = client.post(url + "?confirm=1", contradiction)
    assert response.status_code == 302
    judgement = Judgement.objects.get()
    assert judgement.warnings == ["You prefer A, but B's scores add up higher (16 vs 8)."]


@pytest.mark.parametrize(
    ("preference", "a", "b", "expected"),
    [
        (-2, 2, 4, "You prefer A"),
        (2, 4, 2, "You prefer B"),
        (3, 3, 3, "strong preference"),
        (0, 5, 1, "about the same"),
        (-1, 4, 2, "only slightly"),
        (-1, 4, 3, None),
        (0, 3, 3, None),
    ],
)
def test_consistency_rules(project, preference, a, b, expected):
    warnings = services.judgement_warnings(
        preference=preference, scores=valid_scores(project, a, b)
    )
    assert (expected in " ".join(warnings)) if expected else warnings == []


def test_active_time_is_counted_in_bounded_heartbeats(client, judged_task, contractor):
    client.force_login(contractor)
    url = reverse("tasks:heartbeat", args=[judged_task.pk])
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert client.post(url, {"seconds": "30"}).status_code == 204  # first beat: 30
    with time_machine.travel(start + timedelta(seconds=100), tick=False):
        assert client.post(url, {"seconds": "9999"}).status_code == 204  # counts as 60
        # A flood of beats in the same second claims nothing more.
        assert client.post(url, {"seconds": "60"}).status_code == 204
    assert client.post(url, {"seconds": "lots"}).status_code == 400
    judged_task.refresh_from_db()
    assert judged_task.active_seconds == 90
    assert judged_task.turns.get().active_seconds == 90


def test_no_time_is_counted_once_the_task_is_submitted(client, judged_task, contractor):
    task = services.task_submit(
        task=judged_task, by=contractor, preference=-2, scores=valid_scores(judged_task.project),
        justification="A guards the zero divisor; B does not.",
    )  # fmt: skip
    client.force_login(contractor)
    client.post(reverse("tasks:heartbeat", args=[task.pk]), {"seconds": "30"})
    task.refresh_from_db()
    assert task.active_seconds == 0


def test_a_beat_read_before_the_submit_counts_nothing_after_it(judged_task, contractor):
    """The heartbeat read the task while it was open and the submit committed before its
    lock: the status seen under the lock decides (time written after submission would
    differ from what review_decide counts into the dashboard's aggregates)."""
    stale = Task.objects.get(pk=judged_task.pk)
    services.task_submit(
        task=judged_task, by=contractor, preference=-2, scores=valid_scores(judged_task.project),
        justification="A guards the zero divisor; B does not.",
    )  # fmt: skip
    assert stale.status == Task.Status.AWAITING_PREFERENCE
    services.task_record_activity(task=stale, by=contractor, seconds=30)
    judged_task.refresh_from_db()
    assert judged_task.active_seconds == 0
    assert judged_task.turns.get().active_seconds == 0


def _queries_for(client, task) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("tasks:detail", args=[task.pk])).status_code == 200
    return len(queries)


def test_the_page_makes_the_same_number_of_queries_for_1_and_3_turns(
    client, judged_task, contractor
):
    client.force_login(contractor)
    one_turn = _queries_for(client, judged_task)
    for _ in range(2):
        services.task_follow_up(
            task=judged_task, by=contractor, preference=-2,
            scores=valid_scores(judged_task.project), justification="A is the safer change here.",
            prompt="Also handle negative numbers.",
        )  # fmt: skip
        generate_all(judged_task)
    judged_task.refresh_from_db()
    assert judged_task.turns.count() == 3
    assert _queries_for(client, judged_task) == one_turn


def test_the_page_makes_the_same_number_of_queries_for_1_and_50_files(
    client, judged_task, contractor
):
    client.force_login(contractor)
    one_file = _queries_for(client, judged_task)
    many = "".join(
        f"--- a/f{n}.py\n+++ b/f{n}.py\n@@ -1 +1,2 @@\n x = 1\n+y = {n}\n" for n in range(50)
    )
    Candidate.objects.filter(turn__task=judged_task).update(diff=many)
    assert _queries_for(client, judged_task) == one_file


def test_each_changed_file_links_to_the_whole_file_at_the_pinned_commit(
    client, judged_task, contractor
):
    client.force_login(contractor)
    page = client.get(reverse("tasks:detail", args=[judged_task.pk])).content.decode()
    candidate = Candidate.objects.filter(turn__task=judged_task).first()
    path = candidate.diff.splitlines()[0].removeprefix("--- a/")
    url = reverse("repos:browse", args=[judged_task.repository_id, judged_task.commit_sha, path])
    assert f'href="{url}"' in page
    assert client.get(url).status_code == 200


def test_a_large_file_is_loaded_only_when_opened(
    client, judged_task, contractor, other_contractor, reviewer, monkeypatch
):
    import uuid

    from tasks import diffview

    monkeypatch.setattr(diffview, "LARGE_FILE_LINES", 2)
    marker = uuid.uuid4().hex  # a fresh diff: nothing cached for it yet
    big = f"--- a/big.py\n+++ b/big.py\n@@ -1 +1,4 @@\n x = 1\n+a = '{marker}'\n+b = 2\n+c = 3\n"
    candidate = Candidate.objects.filter(turn__task=judged_task).first()
    Candidate.objects.filter(pk=candidate.pk).update(diff=big)
    client.force_login(contractor)
    page = client.get(reverse("tasks:detail", args=[judged_task.pk])).content.decode()
    lazy = reverse("tasks:candidate_diff", args=[candidate.pk]) + "?file=0&amp;layout=unified"
    assert f'hx-get="{lazy}"' in page
    assert marker not in page  # the file's lines are not in the first load
    url = reverse("tasks:candidate_diff_file", args=[candidate.pk, 0])
    body = client.get(url).content.decode()
    assert marker in body and 'class="diff-unified"' in body
    assert (
        client.get(reverse("tasks:candidate_diff_file", args=[candidate.pk, 5])).status_code == 404
    )

    client.force_login(other_contractor)
    assert client.get(url).status_code == 404
    client.force_login(reviewer)
    assert client.get(url).status_code == 404  # not submitted yet: not the reviewer's to see
    services.task_submit(
        task=judged_task, by=contractor, preference=-2, scores=valid_scores(judged_task.project),
        justification="A guards the zero divisor; B does not.",
    )  # fmt: skip
    assert client.get(url).status_code == 200
