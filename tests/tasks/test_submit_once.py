"""A double click of Submit says "Submitted for review" once, and a draft save arriving after
the submit is answered without an error status (the browser would log it as a failure)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tasks import services
from tasks.models import JudgementDraft, Submission, Task
from tests.tasks.helpers import create_task, generate_all, valid_scores

SUBMITTED = "Submitted for review."
JUSTIFICATION = "A guards the zero divisor; B crashes on it."


@pytest.fixture
def judged_task(ready_repository, project, contractor) -> Task:
    return generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )


def _form(project) -> dict:
    data = {"preference": "-2", "justification": JUSTIFICATION, "action": "submit"}
    for slot, value in (("A", 4), ("B", 2)):
        for key in project.axis_keys:
            data[f"score_{slot}_{key}"] = str(value)
    return data


def test_a_double_click_of_submit_says_submitted_once(client, judged_task, contractor):
    client.force_login(contractor)
    url = reverse("tasks:submit", args=[judged_task.pk])
    # The second click arrives after the first one's answer (and its message) came back, as
    # a slow double click does: both posts carry the same judgement.
    first = client.post(url, _form(judged_task.project))
    second = client.post(url, _form(judged_task.project))
    assert (first.status_code, second.status_code) == (302, 302)

    page = client.get(reverse("tasks:detail", args=[judged_task.pk])).content.decode()
    assert page.count(SUBMITTED) == 1
    assert Submission.objects.filter(task=judged_task).count() == 1


def test_a_replay_whose_first_answer_was_dropped_still_says_it_once(
    client, judged_task, contractor
):
    """A browser that posts the second click before the first answer came back drops that
    answer, and the message it carried: the replay's answer is then the only one seen."""
    client.force_login(contractor)
    url = reverse("tasks:submit", args=[judged_task.pk])
    assert client.post(url, _form(judged_task.project)).status_code == 302
    client.cookies.pop("messages")  # the first answer never reached the browser
    assert client.post(url, _form(judged_task.project)).status_code == 302

    page = client.get(reverse("tasks:detail", args=[judged_task.pk])).content.decode()
    assert page.count(SUBMITTED) == 1


def test_the_service_tells_a_replay_from_the_submit(judged_task):
    verdict = {
        "task": judged_task,
        "by": judged_task.contractor,
        "preference": -2,
        "scores": valid_scores(judged_task.project),
        "justification": JUSTIFICATION,
    }
    assert services.task_submit_once(**verdict).replayed is False
    again = services.task_submit_once(**{**verdict, "task": Task.objects.get(pk=judged_task.pk)})
    assert again.replayed is True
    assert again.task.status == Task.Status.SUBMITTED


@pytest.mark.parametrize("double_click", [False, True])
def test_a_draft_save_after_the_submit_is_no_error(client, judged_task, contractor, double_click):
    client.force_login(contractor)
    submit_url = reverse("tasks:submit", args=[judged_task.pk])
    draft_url = reverse("tasks:draft", args=[judged_task.pk])
    assert client.post(draft_url, {"justification": "first thoughts"}).status_code == 204
    for _ in range(2 if double_click else 1):
        assert client.post(submit_url, _form(judged_task.project)).status_code == 302

    late = client.post(draft_url, {"justification": "typed as the submit went out"})
    # Success, but not 204: 204 tells the page its copy is saved, and this one was not kept.
    assert late.status_code == 200
    assert "no longer being judged" in late.content.decode()
    assert JudgementDraft.objects.get(turn__task=judged_task).data == {
        "justification": "first thoughts"
    }
