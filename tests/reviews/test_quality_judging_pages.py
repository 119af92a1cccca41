"""The judging task pages: a second contractor judges a pair and learns nothing of the first."""

from __future__ import annotations

import pytest
from django.urls import reverse

from reviews.models import JudgingTask, LineComment
from tests.factories import UserFactory, pool_endpoints
from tests.reviews.test_quality_judging import WHY, accepted

pytestmark = pytest.mark.django_db

FIRST_JUSTIFICATION = "A handles the zero case; B crashes."  # tests.tasks.helpers.submit


@pytest.fixture
def overlap_world(project, ready_repository, contractor, reviewer):
    project.overlap_percent = 100
    project.save()
    task = accepted(project, ready_repository, contractor, reviewer)
    return task


def _take(client, user) -> JudgingTask:
    client.force_login(user)
    response = client.post(reverse("reviews:judging_next"))
    assert response.status_code == 302
    judging_task = JudgingTask.objects.get(contractor=user)
    assert response["Location"] == reverse("reviews:judging_detail", args=[judging_task.pk])
    return judging_task


def _form_data(project, preference: int = -1) -> dict:
    data = {"preference": str(preference), "justification": WHY}
    for slot in ("A", "B"):
        for axis in project.axis_keys:
            data[f"score_{slot}_{axis}"] = "4" if slot == "A" else "2"
    return data


def test_the_page_shows_the_pair_and_nothing_of_the_first_judgement(
    client, overlap_world, contractor, other_contractor, reviewer
):
    task = overlap_world
    judging_task = _take(client, other_contractor)
    page = client.get(reverse("reviews:judging_detail", args=[judging_task.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Candidate A" in html and "Candidate B" in html
    assert "Make div safe." in html  # the prompt
    assert FIRST_JUSTIFICATION not in html
    assert contractor.username not in html and reviewer.username not in html
    for endpoint in pool_endpoints(task.project):
        assert endpoint.name not in html and endpoint.model_id not in html
    # The preference the first contractor gave is nowhere as a label either.
    assert "checked" not in html
    # No A vs B toggle: that diff is in the turn's slots, which this task may show swapped.
    assert 'data-set-compare="ab"' not in html


def test_submitting_the_form_records_the_judgement(client, overlap_world, other_contractor):
    project = overlap_world.project
    judging_task = _take(client, other_contractor)
    url = reverse("reviews:judging_detail", args=[judging_task.pk])
    bad = client.post(url, {**_form_data(project), "justification": "Too short."})
    assert bad.status_code == 400
    judging_task.refresh_from_db()
    assert judging_task.status == JudgingTask.Status.TAKEN and judging_task.preference is None
    good = client.post(url, _form_data(project, preference=-2))
    assert good.status_code == 302 and good["Location"] == reverse("reviews:judging")
    judging_task.refresh_from_db()
    assert (judging_task.status, judging_task.preference) == (JudgingTask.Status.SUBMITTED, -2)
    assert judging_task.scores["A"][project.axis_keys[0]] == 4


def test_others_cannot_open_it(client, overlap_world, other_contractor, reviewer):
    judging_task = _take(client, other_contractor)
    url = reverse("reviews:judging_detail", args=[judging_task.pk])
    third = UserFactory(username="erin", role="contractor")
    client.force_login(third)
    assert client.get(url).status_code == 404
    client.force_login(reviewer)
    assert client.get(url).status_code == 403
    assert client.get(reverse("reviews:judging")).status_code == 403


def test_the_judge_reads_the_diffs_but_not_the_first_contractors_comments(
    client, overlap_world, contractor, other_contractor
):
    candidate = overlap_world.turns.get().candidates.get(slot="A")
    LineComment.objects.create(
        candidate=candidate, author=contractor, role="contractor", round=1,
        path="calc/ops.py", side="new", line=1, text="Nice guard.",
    )  # fmt: skip
    _take(client, other_contractor)
    diff = client.get(reverse("tasks:candidate_diff", args=[candidate.pk]))
    assert diff.status_code == 200
    comments = client.get(reverse("api-line-comments", args=[candidate.pk]))
    assert comments.status_code == 404
    third = UserFactory(username="erin", role="contractor")
    client.force_login(third)
    assert client.get(reverse("tasks:candidate_diff", args=[candidate.pk])).status_code == 404


def test_nothing_to_judge_says_so(client, contractor):
    client.force_login(contractor)
    response = client.post(reverse("reviews:judging_next"), follow=True)
    assert "no pair to judge right now" in response.content.decode()
    assert not JudgingTask.objects.exists()


def test_the_api_takes_shows_and_submits_a_pair(
    overlap_world, contractor, other_contractor, reviewer
):
    from tests.api_clients import api_client_for
    from tests.tasks.helpers import valid_scores

    project = overlap_world.project
    api = api_client_for(other_contractor)
    taken = api.post(reverse("api-judging-task-next"))
    assert taken.status_code == 200
    body = taken.content.decode()
    assert FIRST_JUSTIFICATION not in body and contractor.username not in body
    assert "swapped" not in body and "endpoint" not in body
    for endpoint in pool_endpoints(project):
        assert endpoint.name not in body
    pk = taken.json()["id"]
    assert [c["slot"] for c in taken.json()["candidates"]] == ["A", "B"]
    refused = api.post(
        reverse("api-judging-task-submit", args=[pk]),
        {"preference": -1, "scores": valid_scores(project), "justification": "No."},
        format="json",
    )
    assert refused.status_code == 400 and "at least" in refused.content.decode()
    done = api.post(
        reverse("api-judging-task-submit", args=[pk]),
        {"preference": -1, "scores": valid_scores(project), "justification": WHY},
        format="json",
    )
    assert done.status_code == 200 and done.json()["status"] == "SUBMITTED"
    listed = api.get(reverse("api-judging-tasks")).json()
    assert listed["available"] == 0 and [r["id"] for r in listed["results"]] == [pk]
    assert api.post(reverse("api-judging-task-next")).status_code == 204
    assert api_client_for(reviewer).post(reverse("api-judging-task-next")).status_code == 403


@pytest.mark.parametrize(
    ("persona", "expected"),
    [("anonymous", 302), ("outsider", 403), ("reviewer", 403), ("admin_user", 403),
     ("other_contractor", 200)],
)  # fmt: skip
def test_who_may_open_the_judging_pages(request, client, overlap_world, persona, expected):
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))
    for url in (reverse("reviews:judging"),):
        assert client.get(url).status_code == expected
    heartbeat = client.post(reverse("reviews:judging_heartbeat", args=[1]), {"seconds": "5"})
    # Nobody's pair 1 is theirs: refused before the lookup, or not found.
    assert heartbeat.status_code == {200: 404, 302: 302}.get(expected, expected)
    before = JudgingTask.objects.filter(contractor__isnull=False).count()
    taken = client.post(reverse("reviews:judging_next"))
    assert taken.status_code == (302 if expected in (200, 302) else expected)
    after = JudgingTask.objects.filter(contractor__isnull=False).count()
    assert after - before == (1 if persona == "other_contractor" else 0)


def test_judging_pay_reaches_earnings_and_payouts(client, overlap_world, other_contractor):
    from decimal import Decimal

    from reviews.earning_selectors import Period, contractor_earnings, payout_by_contractor
    from reviews.quality_overlap import judging_task_next, judging_task_submit
    from tests.tasks.helpers import valid_scores

    project = overlap_world.project
    project.pay_per_judging_task = Decimal("12.50")
    project.save()
    judging_task = judging_task_next(user=other_contractor)
    judging_task_submit(
        judging_task=judging_task, by=other_contractor, preference=1,
        scores=valid_scores(project), justification=WHY,
    )  # fmt: skip
    mine = contractor_earnings(user=other_contractor)
    assert (mine.judged, mine.judging, mine.total) == (1, Decimal("12.50"), Decimal("12.50"))
    (row,) = [
        r for r in payout_by_contractor(period=Period.this_month())
        if r["contractor_id"] == other_contractor.pk
    ]  # fmt: skip
    assert (row["tasks"], row["judged"], row["judging_amount"], row["amount"]) == (
        0, 1, Decimal("12.50"), Decimal("12.50"),
    )  # fmt: skip


def test_the_heartbeat_counts_active_time_while_the_pair_is_held(
    client, overlap_world, other_contractor
):
    from datetime import timedelta

    from django.utils import timezone

    judging_task = _take(client, other_contractor)
    url = reverse("reviews:judging_heartbeat", args=[judging_task.pk])
    assert client.post(url, {"seconds": "30"}).status_code == 204
    judging_task.refresh_from_db()
    assert judging_task.active_seconds == 30  # the first beat: nothing to compare with
    # A beat claims at most the wall time since the previous one.
    JudgingTask.objects.filter(pk=judging_task.pk).update(
        last_heartbeat_at=timezone.now() - timedelta(seconds=10)
    )
    client.post(url, {"seconds": "45"})
    judging_task.refresh_from_db()
    assert 39 <= judging_task.active_seconds <= 41
    assert client.post(url, {"seconds": "x"}).status_code == 400
    client.post(reverse("reviews:judging_detail", args=[judging_task.pk]),
                _form_data(overlap_world.project))  # fmt: skip
    before = JudgingTask.objects.get(pk=judging_task.pk).active_seconds
    JudgingTask.objects.filter(pk=judging_task.pk).update(
        last_heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    client.post(url, {"seconds": "60"})  # submitted: no more time counts
    assert JudgingTask.objects.get(pk=judging_task.pk).active_seconds == before
