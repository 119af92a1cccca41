from __future__ import annotations

import pytest
from django.urls import reverse

from reviews.round_changes import _word_diff, round_changes
from tasks import services as task_services
from tasks.models import Submission, Task, TaskEvent
from tests.concurrency import run_at_once
from tests.factories import UserFactory
from tests.tasks.helpers import create_task, decide, generate_all, submit, valid_scores


@pytest.fixture
def submitted_task(ready_repository, project, contractor):
    return submit(
        generate_all(
            create_task(contractor=contractor, project=project, repository=ready_repository)
        )
    )


def _revise_and_resubmit(task, *, scores, preference, justification):
    task_services.task_revise(task=task, by=task.contractor)
    task.refresh_from_db()
    return task_services.task_submit(
        task=task,
        by=task.contractor,
        preference=preference,
        scores=scores,
        justification=justification,
    )


def test_the_word_diff_marks_what_was_added_and_removed():
    runs = _word_diff("A guards the zero case well.", "A guards the zero divisor well.")
    assert runs == [
        ("same", "A guards the zero "),
        ("removed", "case "),
        ("added", "divisor "),
        ("same", "well."),
    ]


def test_round_changes_name_each_changed_score_preference_and_justification(
    submitted_task, reviewer
):
    assert round_changes(submitted_task) == {}  # a first round has nothing to compare
    decide(submitted_task, reviewer=reviewer, decision="BOUNCE", feedback="Recheck A.")
    scores = valid_scores(submitted_task.project)
    scores["A"]["security"] = 2
    task = _revise_and_resubmit(
        submitted_task,
        scores=scores,
        preference=-1,
        justification="A handles the zero case; B crashes on it.",
    )
    task = Task.objects.prefetch_related("turns__judgements").get(pk=task.pk)
    change = round_changes(task)[task.turns.get().pk]
    assert not change.is_new
    assert change.scores_was == {"A:security": 4}
    assert change.preference_was == "A better"
    assert change.justification_diff[-2:] == [("removed", "crashes."), ("added", "crashes on it.")]


def test_a_follow_up_added_in_a_revision_is_new_in_the_round(submitted_task, reviewer):
    decide(submitted_task, reviewer=reviewer, decision="BOUNCE", feedback="Ask a follow-up.")
    task_services.task_revise(task=submitted_task, by=submitted_task.contractor)
    submitted_task.refresh_from_db()
    task_services.task_follow_up(
        task=submitted_task,
        by=submitted_task.contractor,
        preference=-2,
        scores=valid_scores(submitted_task.project),
        justification="A handles the zero case; B crashes.",
        prompt="Also add a docstring.",
    )
    task = submit(generate_all(submitted_task))
    task = Task.objects.prefetch_related("turns__judgements").get(pk=task.pk)
    changes = round_changes(task)
    first, second = task.turns.order_by("number")
    assert not changes[first.pk].any  # judged the same as in round 1
    assert changes[second.pk].is_new


def test_the_review_page_highlights_the_changes(client, submitted_task, reviewer):
    decide(submitted_task, reviewer=reviewer, decision="BOUNCE", feedback="Recheck A.")
    scores = valid_scores(submitted_task.project)
    scores["B"]["correctness"] = 1
    _revise_and_resubmit(
        submitted_task,
        scores=scores,
        preference=-2,
        justification="A handles the zero case; B <b>crashes</b>.",
    )
    client.force_login(reviewer)
    page = client.get(reverse("reviews:detail", args=[submitted_task.pk])).content.decode()
    assert 'id="round-changes"' in page
    assert 'class="changed" data-score="B-correctness"' in page
    assert page.count('class="changed" data-score=') == 1
    assert "was 2" in page
    # The justification diff is escaped text: the contractor's markup is not rendered.
    assert "&lt;b&gt;crashes&lt;/b&gt;" in page and "<b>crashes</b>" not in page


def test_every_submission_round_is_its_own_immutable_record(submitted_task, reviewer):
    decide(submitted_task, reviewer=reviewer, decision="BOUNCE", feedback="Again.")
    _revise_and_resubmit(
        submitted_task,
        scores=valid_scores(submitted_task.project, a=5, b=1),
        preference=-3,
        justification="A handles the zero case; B crashes hard.",
    )
    rounds = list(Submission.objects.filter(task=submitted_task).values_list("round", "turn_count"))
    assert rounds == [(1, 1), (2, 1)]
    judgements = submitted_task.turns.get().judgements.order_by("round")
    assert [(j.round, j.preference, j.scores["A"]["security"]) for j in judgements] == [
        (1, -2, 4),
        (2, -3, 5),
    ]


def test_task_events_are_append_only(submitted_task):
    event = TaskEvent.objects.filter(task=submitted_task).first()
    event.reason = "rewritten history"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()
    event.refresh_from_db()
    assert event.reason == ""


@pytest.mark.django_db(transaction=True)
def test_a_double_clicked_submit_records_one_round(ready_repository, project, contractor):
    task = generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )

    outcomes = run_at_once(lambda: submit(Task.objects.get(pk=task.pk)).status, (), ())
    assert outcomes == ["SUBMITTED", "SUBMITTED"]
    assert Submission.objects.filter(task=task).count() == 1
    assert TaskEvent.objects.filter(task=task, to_status="SUBMITTED").count() == 1
    assert task.turns.get().judgements.count() == 1


def test_the_timeline_shows_every_change_and_hides_reviewer_names_from_the_contractor(
    client, submitted_task, reviewer, contractor, admin_user
):
    decide(submitted_task, reviewer=reviewer, decision="BOUNCE", feedback="Explain B's crash.")
    client.force_login(contractor)
    page = client.get(reverse("tasks:detail", args=[submitted_task.pk])).content.decode()
    timeline = page[page.index('id="timeline"') :]
    assert "Submitted for review → Bounced" in timeline
    assert "Claimed for review" in timeline
    assert "a reviewer" in timeline and reviewer.username not in timeline
    assert "Explain B&#x27;s crash." in timeline

    client.force_login(admin_user)
    page = client.get(reverse("reviews:detail", args=[submitted_task.pk])).content.decode()
    timeline = page[page.index('id="timeline"') :]
    assert reviewer.username in timeline and contractor.username in timeline
    assert 'id="review-form"' not in page  # admins read; they do not decide


def test_the_queue_filters_by_project_repository_and_kind_and_shows_round_and_wait(
    client, submitted_task, reviewer, ready_repository, other_contractor
):
    from tests.factories import ProjectFactory

    other_project = ProjectFactory(name="Other project")
    other = create_task(
        contractor=other_contractor, project=other_project, repository=ready_repository
    )
    Task.objects.filter(pk=other.pk).update(kind=Task.Kind.DOCS)
    submit(generate_all(Task.objects.get(pk=other.pk)))
    client.force_login(reviewer)
    url = reverse("reviews:queue")

    def listed(**params) -> set[int]:
        page = client.get(url, params).content.decode()
        return {t.pk for t in (submitted_task, other) if f'data-task="{t.pk}"' in page}

    assert listed() == {submitted_task.pk, other.pk}
    assert listed(project=other_project.pk) == {other.pk}
    assert listed(kind="docs") == {other.pk}
    assert listed(kind="bug_fix", repository=ready_repository.pk) == {submitted_task.pk}
    assert client.get(url, {"kind": "nonsense"}).status_code == 400
    page = client.get(url).content.decode()
    assert "minute" in page  # waiting time
    row = page[page.index(f'data-task="{submitted_task.pk}"') :]
    assert "<td>1</td>" in row[: row.index("</tr>")]  # round


def test_the_queue_never_lists_a_reviewers_own_work(client, ready_repository, project):
    from django.contrib.auth.models import Group

    both = UserFactory(username="both", role="reviewer")
    both.groups.add(Group.objects.get(name="contractor"))
    own = submit(
        generate_all(create_task(contractor=both, project=project, repository=ready_repository))
    )
    client.force_login(both)
    assert f'data-task="{own.pk}"' not in client.get(reverse("reviews:queue")).content.decode()
