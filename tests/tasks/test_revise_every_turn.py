"""A revision round reopens every turn's judgement, not only the last one.

A two-turn task is bounced with a note on turn 1's preference; while revising, the contractor
changes turn 1 (through the service and the workspace form), the reviewer's round diff shows
it, and the export keeps both rounds.
"""

from __future__ import annotations

import re

import orjson
import pytest
from django.urls import reverse

from marlin.exceptions import ApplicationError
from reviews import exports
from reviews.export_filters import ExportFilters
from reviews.round_changes import round_changes
from reviews.services import NoteInput
from tasks import services
from tasks.models import Judgement, JudgementDraft, Task
from tests.tasks.helpers import create_task, decide, generate_all, valid_scores

FIRST = "A handles the zero divisor; B crashes."
REVISED = "A handles the zero divisor and says why; B crashes on zero."
NOTE = "Is A only 'better' here? It is the only one that works at all."


@pytest.fixture
def two_turns(ready_repository, project, contractor) -> Task:
    task = generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )
    judged = {"preference": -2, "scores": valid_scores(project, 4, 2), "justification": FIRST}
    services.task_follow_up(task=task, by=contractor, prompt="Also guard add().", **judged)
    task = generate_all(task)
    return services.task_submit(task=task, by=contractor, **judged)


@pytest.fixture
def bounced(two_turns, reviewer) -> Task:
    turn_1 = two_turns.turns.get(number=1)
    decide(
        two_turns, reviewer=reviewer, decision="BOUNCE", feedback="See the note on turn 1.",
        notes=[NoteInput(turn_id=turn_1.pk, field="preference", text=NOTE)],
    )  # fmt: skip
    two_turns.refresh_from_db()
    assert two_turns.status == Task.Status.BOUNCED
    return two_turns


def _latest(task: Task) -> dict:
    return {"preference": -2, "scores": valid_scores(task.project, 4, 2), "justification": FIRST}


def test_earlier_turns_cannot_be_changed_outside_a_revision(ready_repository, project, contractor):
    task = generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )
    services.task_follow_up(
        task=task, by=contractor, prompt="Also guard add().", **_latest(task)
    )  # fmt: skip
    task = generate_all(task)
    with pytest.raises(ApplicationError, match="only when revising a bounced task"):
        services.task_submit(
            task=task, by=contractor, **_latest(task),
            earlier={1: {**_latest(task), "preference": -3}},
        )  # fmt: skip
    assert Judgement.objects.get(turn__number=1).preference == -2


def test_a_revision_changes_turn_1_and_keeps_round_1(bounced, contractor, reviewer):
    task = services.task_revise(task=bounced, by=contractor)
    scores = valid_scores(task.project, 5, 2)
    services.task_submit(
        task=task, by=contractor, **_latest(task),
        earlier={1: {"preference": -3, "scores": scores, "justification": REVISED}},
    )  # fmt: skip
    rounds = {j.round: j for j in Judgement.objects.filter(turn__number=1, turn__task=task)}
    assert (rounds[1].preference, rounds[1].justification) == (-2, FIRST)
    assert (rounds[2].preference, rounds[2].justification) == (-3, REVISED)
    assert rounds[2].scores == scores
    # The reviewer of round 2 sees turn 1's change.
    task = Task.objects.prefetch_related("turns__judgements").get(pk=task.pk)
    changes = round_changes(task)
    first = changes[task.turns.get(number=1).pk]
    assert first.preference_was == "A better"
    assert first.scores_was == {f"A:{axis}": 4 for axis in task.project.axis_keys}
    assert first.justification_diff
    assert not changes[task.turns.get(number=2).pk].any
    decide(task, reviewer=reviewer)
    native = [
        orjson.loads(line)
        for block in exports.export_blocks(fmt="native", filters=ExportFilters())
        for line in block.data.splitlines()
    ]
    turn_1 = native[0]
    assert (turn_1["turn"], turn_1["preference"], turn_1["round_judged"]) == (1, -3, 2)
    assert turn_1["justification"] == REVISED
    assert [(h["round"], h["preference"], h["justification"]) for h in turn_1["judgement_history"]] == [
        (1, -2, FIRST), (2, -3, REVISED),
    ]  # fmt: skip


def test_an_earlier_turns_contradiction_must_be_confirmed_and_is_named(bounced, contractor):
    task = services.task_revise(task=bounced, by=contractor)
    contradiction = {**_latest(task), "preference": 2}  # prefers B, scored A higher
    with pytest.raises(services.JudgementNeedsConfirmation) as caught:
        services.task_submit(task=task, by=contractor, **_latest(task), earlier={1: contradiction})
    assert caught.value.warnings == [
        "Turn 1: You prefer B, but A's scores add up higher (16 vs 8)."
    ]
    assert Judgement.objects.get(turn__number=1, round=2).preference == -2
    services.task_submit(
        task=task, by=contractor, **_latest(task), earlier={1: contradiction},
        confirm_warnings=True,
    )  # fmt: skip
    assert Judgement.objects.get(turn__number=1, round=2).preference == 2


def test_an_unknown_or_latest_turn_is_no_earlier_turn(bounced, contractor):
    task = services.task_revise(task=bounced, by=contractor)
    for number in (2, 7):
        with pytest.raises(ApplicationError, match=f"no earlier turn {number}"):
            services.task_submit(
                task=task, by=contractor, **_latest(task), earlier={number: _latest(task)}
            )


def test_drafts_keep_earlier_turns_only_while_revising(client, two_turns, bounced, contractor):
    client.force_login(contractor)
    url = reverse("tasks:draft", args=[bounced.pk])
    services.task_revise(task=bounced, by=contractor)
    data = {"preference": "-2", "turn1-preference": "-3", "turn1-justification": "typing…"}
    assert client.post(url, data).status_code == 204
    draft = JudgementDraft.objects.get(turn__number=1, round=2)
    assert draft.data == {"preference": "-3", "justification": "typing…"}
    assert JudgementDraft.objects.get(turn__number=2, round=2).data == {"preference": "-2"}
    # A reload starts turn 1's form from the draft, not from the judgement.
    page = client.get(reverse("tasks:detail", args=[bounced.pk])).content.decode()
    checked = re.findall(r'<input[^>]*name="turn1-preference" value="(-?\d)"[^>]*checked', page)
    assert checked == ["-3"]


def test_the_workspace_reopens_turn_1_with_the_note_beside_its_preference(
    client, bounced, contractor
):
    client.force_login(contractor)
    page = client.get(reverse("tasks:detail", args=[bounced.pk])).content.decode()
    assert 'name="turn1-preference"' not in page  # bounced, not yet revising
    assert "Reviewer's note on the preference:" in page  # but the note is shown
    client.post(reverse("tasks:revise", args=[bounced.pk]))
    page = client.get(reverse("tasks:detail", args=[bounced.pk])).content.decode()
    section = page[page.index('id="judgement-turn-1"') :]
    # Up to the current turn's prompt (the turn's fields hold folds of their own).
    section = section[: section.index('id="current-turn"')]
    assert 'name="turn1-preference"' in section and 'form="judgement"' in section
    note = section.index("Reviewer's note on the preference:")
    assert section.index('class="preference"') < note < section.index("turn1-justification")


def test_the_workspace_form_saves_turn_1(client, bounced, contractor):
    client.force_login(contractor)
    client.post(reverse("tasks:revise", args=[bounced.pk]))
    data = {"preference": "-2", "justification": FIRST, "action": "submit"}
    for slot, value in (("A", 4), ("B", 2)):
        for axis in bounced.project.axis_keys:
            data[f"score_{slot}_{axis}"] = str(value)
            data[f"turn1-score_{slot}_{axis}"] = str(value + 1 if slot == "A" else value)
    data.update({"turn1-preference": "-3", "turn1-justification": REVISED})
    response = client.post(reverse("tasks:submit", args=[bounced.pk]), data)
    assert response.status_code == 302, response.content.decode()[-2000:]
    revised = Judgement.objects.get(turn__number=1, round=2)
    assert (revised.preference, revised.justification) == (-3, REVISED)
    assert revised.scores["A"]["security"] == 5
    bounced.refresh_from_db()
    assert bounced.status == Task.Status.SUBMITTED


def test_the_contractor_always_sees_what_they_submitted(client, two_turns, contractor):
    client.force_login(contractor)
    page = client.get(reverse("tasks:detail", args=[two_turns.pk])).content.decode()
    assert two_turns.status == Task.Status.SUBMITTED
    for number in (1, 2):
        section = page[page.index(f'id="submitted-judgement-{number}"') :]
        section = section[: section.index("</table>")]
        assert 'data-score="A-security">4' in section and 'data-score="B-security">2' in section
    assert page.count('class="submitted-preference">A better<') == 2
    assert page.count(FIRST) >= 2


def test_prompts_and_justifications_are_stored_with_lf_line_endings(bounced, contractor):
    task = services.task_revise(task=bounced, by=contractor)
    services.task_submit(
        task=task, by=contractor, **{**_latest(task), "justification": "Line one.\r\nLine two\rthree."},
    )  # fmt: skip
    assert Judgement.objects.get(turn__number=2, round=2).justification == (
        "Line one.\nLine two\nthree."
    )


def _api(user):
    from tests.api_clients import api_client_for

    return api_client_for(user)


def test_the_api_revises_earlier_turns_too(bounced, contractor):
    client = _api(contractor)
    assert client.post(reverse("api-task-revise", args=[bounced.pk])).status_code == 200
    url = reverse("api-task-submit", args=[bounced.pk])
    body = {
        **_latest(bounced),
        "earlier_turns": [{"turn": 1, **_latest(bounced), "preference": -3}],
    }
    twice = {**body, "earlier_turns": body["earlier_turns"] * 2}
    response = client.post(url, twice, format="json")
    assert response.status_code == 400
    assert "Turn 1 is given twice." in str(response.json())
    response = client.post(url, body, format="json")
    assert response.status_code == 200, response.json()
    assert Judgement.objects.get(turn__number=1, round=2).preference == -3
    detail = client.get(reverse("api-task", args=[bounced.pk])).json()
    assert [t["has_identical_candidates"] for t in detail["turns"]] == [False, False]
