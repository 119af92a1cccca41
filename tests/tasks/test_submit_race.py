"""Two submits of one task with different judgements: one is kept, the other is told (409).

A resubmit with the judgement already under review stays a harmless double click; only a
different judgement is refused, so nothing the contractor typed is dropped in silence.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from marlin.exceptions import ConflictError
from tasks import services
from tasks.models import Judgement, JudgementDraft, Submission, Task, TaskEvent
from tests.api_clients import api_token_for
from tests.tasks.helpers import create_task, generate_all, valid_scores

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL row locks: SQLite's IMMEDIATE transactions serialise the "
    "requests before they race; CI runs on PostgreSQL",
)

ALREADY = "already submitted for review with a different judgement"

# (preference, A's score, B's score, justification): two judgements that differ everywhere,
# so a stored mix of the two would show.
FOR_A = (-2, 4, 2, "A guards the zero divisor; B crashes on it.")
FOR_B = (2, 2, 5, "B adds a test for the zero case; A has none.")


@pytest.fixture
def judged_task(ready_repository, project, contractor) -> Task:
    return generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )


def _service_submit(task: Task, judgement: tuple) -> Task:
    preference, a, b, text = judgement
    return services.task_submit(
        task=task,
        by=task.contractor,
        preference=preference,
        scores=valid_scores(task.project, a=a, b=b),
        justification=text,
    )


def _assert_stored(task: Task, judgement: tuple) -> None:
    preference, a, b, text = judgement
    stored = Judgement.objects.get(turn__task=task)
    assert (stored.preference, stored.justification) == (preference, text)
    assert stored.scores == valid_scores(task.project, a=a, b=b)


def test_a_different_judgement_for_a_submitted_task_is_refused(judged_task):
    _service_submit(judged_task, FOR_A)
    with pytest.raises(ConflictError, match=ALREADY):
        _service_submit(Task.objects.get(pk=judged_task.pk), FOR_B)
    _assert_stored(judged_task, FOR_A)
    assert Submission.objects.filter(task=judged_task).count() == 1


@pytest.mark.parametrize(
    "change",
    [
        {"preference": 1},
        {"justification": "A guards the zero divisor; B crashes on it!"},
        {"scores": "B"},
    ],
)
def test_any_changed_field_counts_as_a_different_judgement(judged_task, change):
    _service_submit(judged_task, FOR_A)
    preference, a, b, text = FOR_A
    again = {
        "preference": preference,
        "scores": valid_scores(judged_task.project, a=a, b=b),
        "justification": text,
    }
    if change.get("scores") == "B":
        again["scores"]["B"][judged_task.project.axis_keys[-1]] = 3
    else:
        again.update(change)
    with pytest.raises(ConflictError, match=ALREADY):
        services.task_submit(task=judged_task, by=judged_task.contractor, **again)
    _assert_stored(judged_task, FOR_A)


def test_the_same_judgement_again_is_a_harmless_double_click(judged_task):
    _service_submit(judged_task, FOR_A)
    preference, a, b, text = FOR_A
    # The form sends Windows newlines and trailing blanks; the stored text has neither.
    task = services.task_submit(
        task=Task.objects.get(pk=judged_task.pk),
        by=judged_task.contractor,
        preference=preference,
        scores=valid_scores(judged_task.project, a=a, b=b),
        justification=f"  {text}\r\n",
    )
    assert task.status == Task.Status.SUBMITTED
    _assert_stored(judged_task, FOR_A)
    assert TaskEvent.objects.filter(task=judged_task, to_status="SUBMITTED").count() == 1


def _form_data(project, judgement: tuple) -> dict:
    preference, a, b, text = judgement
    data = {"preference": str(preference), "justification": text, "action": "submit"}
    for slot, value in (("A", a), ("B", b)):
        for key in project.axis_keys:
            data[f"score_{slot}_{key}"] = str(value)
    return data


def test_the_page_says_the_task_was_already_submitted(client, judged_task, contractor):
    client.force_login(contractor)
    url = reverse("tasks:submit", args=[judged_task.pk])
    first = client.post(url, _form_data(judged_task.project, FOR_A), follow=True)
    assert "Submitted for review." in first.content.decode()
    response = client.post(url, _form_data(judged_task.project, FOR_B))
    assert response.status_code == 409
    page = response.content.decode()
    assert ALREADY in page and 'role="status"' in page
    # The page shows the judgement that is under review, not the refused one.
    assert FOR_A[3] in page and FOR_B[3] not in page
    assert "Submitted for review." not in page
    _assert_stored(judged_task, FOR_A)


def _lock_waiters() -> int:
    """Other sessions of this database blocked on a lock right now."""
    with connection.cursor() as cursor:
        # Statistics views keep one snapshot per transaction; the caller holds one open.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def _wait_for_lock_waiters(count: int) -> None:
    deadline = time.monotonic() + 20
    while _lock_waiters() < count:
        assert time.monotonic() < deadline, f"{count} requests never waited on the task row"
        time.sleep(0.05)


def _api_post(task: Task, token: str, judgement: tuple):
    preference, a, b, text = judgement
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    body = {
        "preference": preference,
        "scores": valid_scores(task.project, a=a, b=b),
        "justification": text,
    }
    response = client.post(f"/api/tasks/{task.pk}/submit/", body, format="json")
    return response.status_code, response.json().get("detail", "")


def _form_post(task: Task, _token: str, judgement: tuple):
    client = Client()
    client.force_login(task.contractor)
    response = client.post(
        reverse("tasks:submit", args=[task.pk]), _form_data(task.project, judgement)
    )
    return response.status_code, response.content.decode()


@postgres_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("post", "won"), [(_api_post, 200), (_form_post, 302)], ids=["api", "form"]
)
def test_two_different_submits_at_once_one_wins_and_one_gets_409(judged_task, post, won):
    token = api_token_for(judged_task.contractor)
    barrier = threading.Barrier(3)
    outcomes: dict[tuple, tuple] = {}

    def run(judgement: tuple) -> None:
        barrier.wait()
        try:
            outcomes[judgement] = post(judged_task, token, judgement)
        finally:
            connections.close_all()

    # Hold the task row while both requests start, so each reaches the row lock before
    # either can submit: the two truly overlap, and the loser waits for the winner's commit.
    with transaction.atomic():
        Task.objects.select_for_update().get(pk=judged_task.pk)
        threads = [threading.Thread(target=run, args=(j,)) for j in (FOR_A, FOR_B)]
        for thread in threads:
            thread.start()
        barrier.wait()
        _wait_for_lock_waiters(2)
    for thread in threads:
        thread.join(timeout=30)
    assert len(outcomes) == 2, "a submit did not finish within 30 s"

    statuses = sorted(status for status, _ in outcomes.values())
    assert statuses == sorted([won, 409])
    winner = next(j for j, (status, _) in outcomes.items() if status == won)
    loser_says = next(text for status, text in outcomes.values() if status == 409)
    # The refusal comes from the already-submitted branch, which only the loser can reach.
    assert ALREADY in loser_says
    _assert_stored(judged_task, winner)
    assert Submission.objects.filter(task=judged_task).count() == 1
    assert TaskEvent.objects.filter(task=judged_task, to_status="SUBMITTED").count() == 1


def test_a_draft_sent_after_the_submit_is_ignored_without_an_error(client, judged_task, contractor):
    client.force_login(contractor)
    draft_url = reverse("tasks:draft", args=[judged_task.pk])
    assert client.post(draft_url, {"justification": "first thoughts"}).status_code == 204
    _service_submit(judged_task, FOR_A)
    # The page saves once more as it is left after its own submit: no error for that.
    late = client.post(draft_url, {"justification": "late keystrokes"})
    assert late.status_code == 200
    assert late.content.decode() == "Draft not kept: this task is no longer being judged."
    assert JudgementDraft.objects.get(turn__task=judged_task).data == {
        "justification": "first thoughts"
    }


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_draft_save_racing_the_submit_waits_and_changes_nothing(judged_task):
    services.judgement_draft_save(
        task=judged_task, by=judged_task.contractor, data={"justification": "first thoughts"}
    )
    answers: list = []

    def save_draft() -> None:
        client = Client()
        client.force_login(judged_task.contractor)
        try:
            response = client.post(
                reverse("tasks:draft", args=[judged_task.pk]), {"justification": "late"}
            )
            answers.append(response.status_code)
        finally:
            connections.close_all()

    with transaction.atomic():
        _service_submit(judged_task, FOR_A)
        thread = threading.Thread(target=save_draft)
        thread.start()
        # The save must wait for the submit's row lock, not read the task before it commits.
        _wait_for_lock_waiters(1)
    thread.join(timeout=30)
    assert answers == [200]
    assert JudgementDraft.objects.get(turn__task=judged_task).data == {
        "justification": "first thoughts"
    }
