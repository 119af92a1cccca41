"""Reviewer audits: which acceptances are audited, who may take and decide an audit, the
overturn rates, and the pages and API over them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.template.loader import render_to_string
from django.urls import reverse
from rest_framework.test import APIClient

from marlin import roles
from marlin.exceptions import (
    ApplicationError,
    ConflictError,
    InvalidTransition,
    PermissionDeniedError,
)
from reviews import aggregates
from reviews.models import Earning, Review, ReviewAudit
from reviews.quality_audits import (
    NOTE_MAX_CHARS,
    audit_decide,
    audit_queue,
    audit_take,
    reviewer_overturn_rates,
    wilson_interval,
)
from tasks.models import Task
from tests.concurrency import run_at_once
from tests.factories import ProjectFactory, UserFactory
from tests.tasks.helpers import create_task, decide, generate_all, submit


def _accepted(*, contractor, project, repository, reviewer) -> Task:
    task = submit(
        generate_all(create_task(contractor=contractor, project=project, repository=repository))
    )
    decide(task, reviewer=reviewer)
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED
    return task


@pytest.fixture
def rex(db):
    """A second reviewer: the auditor."""
    return UserFactory(username="rex", role=roles.REVIEWER)


@pytest.fixture
def ted(db):
    """A third reviewer."""
    return UserFactory(username="ted", role=roles.REVIEWER)


@pytest.fixture
def audited_project(project):
    project.audit_percent = 100
    project.save()
    return project


@pytest.fixture
def audit(ready_repository, audited_project, contractor, reviewer) -> ReviewAudit:
    """The open audit of a task `reviewer` (rita) accepted."""
    task = _accepted(
        contractor=contractor,
        project=audited_project,
        repository=ready_repository,
        reviewer=reviewer,
    )
    return ReviewAudit.objects.get(review__task=task)


@pytest.fixture
def taken(audit, rex) -> ReviewAudit:
    return audit_take(audit=audit, by=rex)


# --- Which acceptances are audited ---------------------------------------------------------


def test_at_zero_percent_no_acceptance_is_audited(ready_repository, project, contractor, reviewer):
    assert project.audit_percent == 0
    for _ in range(3):
        _accepted(
            contractor=contractor, project=project, repository=ready_repository, reviewer=reviewer
        )
    assert not ReviewAudit.objects.exists()


def test_at_100_percent_every_acceptance_is_audited_and_a_bounce_never(
    ready_repository, audited_project, contractor, reviewer
):
    tasks = [
        _accepted(
            contractor=contractor,
            project=audited_project,
            repository=ready_repository,
            reviewer=reviewer,
        )
        for _ in range(3)
    ]
    audits = ReviewAudit.objects.filter(review__task__in=tasks)
    assert audits.count() == 3
    assert {(a.status, a.auditor_id, a.review.decision) for a in audits} == {
        (ReviewAudit.Status.OPEN, None, Review.Decision.ACCEPT)
    }
    bounced = submit(
        generate_all(
            create_task(contractor=contractor, project=audited_project, repository=ready_repository)
        )
    )
    decide(bounced, reviewer=reviewer, decision="BOUNCE", feedback="Explain the zero case.")
    # A bounce is seen again by the next round's reviewer; only acceptances are audited.
    assert not ReviewAudit.objects.filter(review__task=bounced).exists()


def test_a_replayed_acceptance_opens_no_second_audit(audit):
    from reviews.quality_audits import audit_maybe_open

    assert audit_maybe_open(review=audit.review) == audit
    assert ReviewAudit.objects.count() == 1


# --- Taking an audit ---------------------------------------------------------------------


def test_the_reviewer_audited_cannot_take_it(audit, reviewer):
    with pytest.raises(PermissionDeniedError, match="You cannot audit your own review."):
        audit_take(audit=audit, by=reviewer)
    audit.refresh_from_db()
    assert audit.status == ReviewAudit.Status.OPEN


def test_the_tasks_contractor_cannot_take_it_even_as_a_reviewer(
    ready_repository, audited_project, reviewer
):
    sam = UserFactory(username="sam", role=roles.REVIEWER)
    sam.groups.add(Group.objects.get(name=roles.CONTRACTOR))
    task = _accepted(
        contractor=sam, project=audited_project, repository=ready_repository, reviewer=reviewer
    )
    audit = ReviewAudit.objects.get(review__task=task)
    with pytest.raises(PermissionDeniedError, match="You cannot audit a review of your own task."):
        audit_take(audit=audit, by=sam)
    assert audit not in audit_queue(user=sam)


def test_only_reviewers_take_audits(audit, contractor, admin_user):
    for person in (contractor, admin_user):
        with pytest.raises(PermissionDeniedError, match="Only reviewers can audit reviews."):
            audit_take(audit=audit, by=person)
    audit.refresh_from_db()
    assert (audit.status, audit.auditor_id) == (ReviewAudit.Status.OPEN, None)


def test_a_reviewer_takes_an_audit_once_and_a_second_reviewer_is_told(audit, rex, ted):
    taken = audit_take(audit=audit, by=rex)
    assert (taken.status, taken.auditor) == (ReviewAudit.Status.TAKEN, rex)
    # A double click returns the same audit.
    assert audit_take(audit=ReviewAudit.objects.get(pk=audit.pk), by=rex).auditor == rex
    with pytest.raises(ConflictError, match="already taken by another reviewer"):
        audit_take(audit=ReviewAudit.objects.get(pk=audit.pk), by=ted)
    audit.refresh_from_db()
    assert audit.auditor == rex


def test_a_take_that_lost_the_race_is_a_conflict_from_the_compare_and_set(audit, rex, ted):
    stale = ReviewAudit.objects.get(pk=audit.pk)
    audit_take(audit=ReviewAudit.objects.get(pk=audit.pk), by=rex)
    # `stale` still reads OPEN, as a reviewer's page did before rex's take committed: the
    # conditional UPDATE matched no row, and that is what is reported.
    with pytest.raises(ConflictError, match="already taken by another reviewer") as caught:
        audit_take(audit=stale, by=ted)
    assert isinstance(caught.value.__cause__, InvalidTransition)
    audit.refresh_from_db()
    assert audit.auditor == rex


@pytest.mark.postgresql_only
@pytest.mark.django_db(transaction=True)
def test_two_reviewers_taking_at_once_exactly_one_wins(ready_repository, contractor):
    project = ProjectFactory(name="Audited", audit_percent=100)
    first = UserFactory(username="first", role=roles.REVIEWER)
    task = _accepted(
        contractor=contractor, project=project, repository=ready_repository, reviewer=first
    )
    audit = ReviewAudit.objects.get(review__task=task)
    auditors = [UserFactory(username=f"aud{i}", role=roles.REVIEWER) for i in range(2)]

    def run(auditor):
        return audit_take(audit=ReviewAudit.objects.get(pk=audit.pk), by=auditor).auditor_id

    # The take writes only the audit row, so there is no other row for run_racing to hold;
    # the compare-and-set branch itself is pinned by the stale-instance test above.
    outcomes = run_at_once(run, *[(a,) for a in auditors])
    [winner] = [o for o in outcomes if isinstance(o, int)]
    [loser] = [o for o in outcomes if isinstance(o, ConflictError)]
    assert loser.message == "This audit is already taken by another reviewer."
    audit.refresh_from_db()
    assert audit.auditor_id == winner and audit.status == ReviewAudit.Status.TAKEN


def test_a_decided_audit_cannot_be_taken(taken, rex, ted):
    audit_decide(audit=taken, by=rex, overturn=False, note="")
    with pytest.raises(ConflictError, match="already decided"):
        audit_take(audit=ReviewAudit.objects.get(pk=taken.pk), by=ted)


# --- Deciding an audit -------------------------------------------------------------------


def test_an_audit_must_be_taken_before_it_is_decided(audit, rex):
    with pytest.raises(ConflictError, match="Take this audit before deciding it."):
        audit_decide(audit=audit, by=rex, overturn=False, note="")


def test_only_the_auditor_holding_it_decides(taken, ted, reviewer, contractor):
    with pytest.raises(PermissionDeniedError, match="Only the reviewer who took this audit"):
        audit_decide(audit=taken, by=ted, overturn=True, note="Wrong.")
    with pytest.raises(PermissionDeniedError, match="Only the reviewer who took this audit"):
        audit_decide(audit=taken, by=reviewer, overturn=False, note="")
    with pytest.raises(PermissionDeniedError, match="Only reviewers can audit reviews."):
        audit_decide(audit=taken, by=contractor, overturn=False, note="")
    taken.refresh_from_db()
    assert taken.status == ReviewAudit.Status.TAKEN


@pytest.mark.parametrize("note", ["", "  \r\n "])
def test_an_overturn_needs_a_note(taken, rex, note):
    with pytest.raises(ApplicationError, match="Overturning a decision needs a note"):
        audit_decide(audit=taken, by=rex, overturn=True, note=note)
    taken.refresh_from_db()
    assert taken.status == ReviewAudit.Status.TAKEN


def test_an_audit_note_is_bounded(taken, rex):
    with pytest.raises(ApplicationError, match=f"limited to {NOTE_MAX_CHARS} characters"):
        audit_decide(audit=taken, by=rex, overturn=True, note="x" * (NOTE_MAX_CHARS + 1))
    assert audit_decide(audit=taken, by=rex, overturn=True, note="x" * NOTE_MAX_CHARS).note


def test_an_uphold_needs_no_note(taken, rex):
    audit = audit_decide(audit=taken, by=rex, overturn=False, note="")
    audit.refresh_from_db()
    assert audit.status == ReviewAudit.Status.UPHELD
    assert audit.decided_at is not None


def test_an_overturn_is_recorded_and_leaves_the_task_as_it_was(taken, rex):
    task = taken.review.task
    earning = Earning.objects.get(task=task)
    audit = audit_decide(
        audit=taken, by=rex, overturn=True, note="  B's test is missing.\r\nBounce it.  "
    )
    audit.refresh_from_db()
    assert audit.status == ReviewAudit.Status.OVERTURNED
    assert audit.note == "B's test is missing.\nBounce it."
    # A quality signal only: the task stays accepted and its pay is untouched.
    task.refresh_from_db()
    assert task.status == Task.Status.ACCEPTED
    assert Earning.objects.get(task=task).amount == earning.amount


def test_the_same_decision_twice_is_answered_and_a_different_one_refused(taken, rex):
    first = audit_decide(audit=taken, by=rex, overturn=True, note="Missing test.")
    again = audit_decide(
        audit=ReviewAudit.objects.get(pk=taken.pk), by=rex, overturn=True, note="Missing test."
    )
    assert again.pk == first.pk and again.status == ReviewAudit.Status.OVERTURNED
    with pytest.raises(ConflictError, match=r"already decided \(overturned\)"):
        audit_decide(audit=ReviewAudit.objects.get(pk=taken.pk), by=rex, overturn=False, note="")
    assert ReviewAudit.objects.get(pk=taken.pk).status == ReviewAudit.Status.OVERTURNED


# --- The queue ---------------------------------------------------------------------------


def test_the_queue_shows_open_audits_others_may_take_and_the_ones_held(audit, reviewer, rex, ted):
    assert list(audit_queue(user=rex)) == [audit]
    assert list(audit_queue(user=reviewer)) == []
    audit_take(audit=audit, by=rex)
    assert list(audit_queue(user=rex)) == [audit]
    # Taken by rex: no longer offered to anyone else.
    assert list(audit_queue(user=ted)) == []


# --- Overturn rates ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (score).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_the_wilson_interval_matches_the_literature(successes, trials, low, high):
    got = wilson_interval(successes, trials)
    assert got == pytest.approx((low, high), abs=5e-5)


def _decided_audits(task, reviewer, auditor, outcomes: list[str], *, first_round: int) -> None:
    """Decided audits of `reviewer`'s acceptances, one review row per outcome (rounds
    stand in for tasks: the rate query reads only the review's reviewer and project)."""
    for i, outcome in enumerate(outcomes):
        review = Review.objects.create(
            task=task, round=first_round + i, reviewer=reviewer, decision=Review.Decision.ACCEPT
        )
        ReviewAudit.objects.create(review=review, auditor=auditor, status=outcome)
    # Decided behind audit_decide's back: the kept counts are rebuilt, as
    # `manage.py dashboard_aggregates_rebuild` would after such an edit.
    aggregates.aggregates_rebuild()


def test_overturn_rates_per_reviewer_with_intervals_in_one_query(
    audit, reviewer, rex, ted, django_assert_num_queries
):
    task = audit.review.task
    up, over = ReviewAudit.Status.UPHELD, ReviewAudit.Status.OVERTURNED
    # rita: 1 of 10 overturned (plus the fixture's audit, still open: not counted).
    _decided_audits(task, reviewer, rex, [over] + [up] * 9, first_round=10)
    # ted: 2 of 3.
    _decided_audits(task, ted, rex, [over, over, up], first_round=30)
    # rex audited but was never audited: no row.
    with django_assert_num_queries(1):
        rates = reviewer_overturn_rates()
    assert [(r.username, r.audited, r.overturned) for r in rates] == [
        ("ted", 3, 2),
        ("rita", 10, 1),
    ]
    ted_rate, rita_rate = rates
    assert ted_rate.rate == pytest.approx(2 / 3)
    assert (ted_rate.low, ted_rate.high) == pytest.approx((0.2077, 0.9385), abs=5e-5)
    assert rita_rate.rate == pytest.approx(0.1)
    assert (rita_rate.low, rita_rate.high) == pytest.approx((0.0179, 0.4042), abs=5e-5)


def test_overturn_rates_of_one_project_leave_the_others_out(audit, reviewer, rex):
    _decided_audits(
        audit.review.task, reviewer, rex, [ReviewAudit.Status.OVERTURNED], first_round=5
    )
    assert [r.audited for r in reviewer_overturn_rates(project=audit.review.task.project)] == [1]
    assert reviewer_overturn_rates(project=ProjectFactory(name="Elsewhere")) == []


def test_the_dashboard_block_shows_rates_and_an_empty_state(audit, reviewer, rex):
    empty = render_to_string("reviews/_overturn_rates.html", {"overturn_rates": []})
    assert "No audits decided yet." in empty
    _decided_audits(
        audit.review.task,
        reviewer,
        rex,
        [ReviewAudit.Status.OVERTURNED] + [ReviewAudit.Status.UPHELD] * 9,
        first_round=10,
    )
    html = render_to_string(
        "reviews/_overturn_rates.html", {"overturn_rates": reviewer_overturn_rates()}
    )
    assert '<tr data-reviewer="rita"><td>rita</td><td>10</td><td>1</td>' in html
    assert "10%" in html and "2% … 40%" in html


# --- Pages -------------------------------------------------------------------------------


def test_the_audit_queue_page_lists_what_the_reviewer_may_take(client, audit, rex, reviewer):
    client.force_login(rex)
    page = client.get(reverse("reviews:audits")).content.decode()
    assert f'data-audit="{audit.pk}"' in page
    assert reverse("reviews:audit_take", args=[audit.pk]) in page
    client.force_login(reviewer)
    page = client.get(reverse("reviews:audits")).content.decode()
    assert f'data-audit="{audit.pk}"' not in page and "No audits wait for you." in page


def test_the_audit_pages_refuse_contractors_and_the_reviewer_audited(
    client, audit, contractor, reviewer, other_contractor
):
    for person in (contractor, other_contractor):
        client.force_login(person)
        assert client.get(reverse("reviews:audits")).status_code == 403
        assert client.get(reverse("reviews:audit_detail", args=[audit.pk])).status_code == 403
    client.force_login(reviewer)
    assert client.get(reverse("reviews:audit_detail", args=[audit.pk])).status_code == 403
    assert client.post(reverse("reviews:audit_take", args=[audit.pk])).status_code == 403
    audit.refresh_from_db()
    assert audit.status == ReviewAudit.Status.OPEN


def test_the_audit_page_shows_the_task_as_it_was_accepted(client, audit, rex, admin_user):
    client.force_login(rex)
    response = client.get(reverse("reviews:audit_detail", args=[audit.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    # The review page's own body: the turn, the contractor's judgement and the decision.
    assert "Guard division" in page and "Make div safe." in page
    assert "Contractor's judgement of turn 1" in page
    assert "A handles the zero case; B crashes." in page
    assert "Round 1: Accept" in page
    assert 'id="audited-reviewer">rita<' in page
    assert 'id="take-audit"' in page
    # No review form: the page has neither its decision nor its note inputs.
    assert "review-form" not in page and "note-input" not in page
    client.force_login(admin_user)
    page = client.get(reverse("reviews:audit_detail", args=[audit.pk])).content.decode()
    assert "Round 1: Accept" in page and 'id="take-audit"' not in page


def test_taking_and_overturning_through_the_pages(client, audit, rex):
    client.force_login(rex)
    response = client.post(reverse("reviews:audit_take", args=[audit.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("reviews:audit_detail", args=[audit.pk])
    page = client.get(response["Location"]).content.decode()
    assert 'id="uphold"' in page and 'id="overturn"' in page
    url = reverse("reviews:audit_decide", args=[audit.pk])

    refused = client.post(url, {"outcome": "overturn", "note": " "})
    assert refused.status_code == 400
    assert "Overturning a decision needs a note saying why." in refused.content.decode()
    audit.refresh_from_db()
    assert audit.status == ReviewAudit.Status.TAKEN

    note = "<script>alert(1)</script> B skips the zero case."
    response = client.post(url, {"outcome": "overturn", "note": note})
    assert response.status_code == 302 and response["Location"] == reverse("reviews:audits")
    audit.refresh_from_db()
    assert (audit.status, audit.note) == (ReviewAudit.Status.OVERTURNED, note)
    page = client.get(reverse("reviews:audit_detail", args=[audit.pk])).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; B skips the zero case." in page
    assert "<script>alert(1)" not in page
    assert 'id="uphold"' not in page


def test_a_second_reviewer_taking_on_the_page_is_told_it_is_taken(client, taken, ted):
    client.force_login(ted)
    response = client.post(reverse("reviews:audit_take", args=[taken.pk]), follow=True)
    assert "This audit is already taken by another reviewer." in response.content.decode()
    page = client.get(reverse("reviews:audit_detail", args=[taken.pk])).content.decode()
    assert "Another reviewer is auditing this task." in page and 'id="uphold"' not in page
    response = client.post(
        reverse("reviews:audit_decide", args=[taken.pk]), {"outcome": "uphold", "note": ""}
    )
    assert response.status_code == 403
    taken.refresh_from_db()
    assert taken.status == ReviewAudit.Status.TAKEN


def test_the_page_rejects_a_get_on_take_and_decide(client, audit, rex):
    client.force_login(rex)
    assert client.get(reverse("reviews:audit_take", args=[audit.pk])).status_code == 405
    assert client.get(reverse("reviews:audit_decide", args=[audit.pk])).status_code == 405


# --- API ---------------------------------------------------------------------------------


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def test_the_api_lists_audits_for_reviewers_only(audit, rex, reviewer, contractor, admin_user):
    listed = _api(rex).get(reverse("api-audits"))
    assert listed.status_code == 200
    [row] = listed.json()["results"]
    assert (row["id"], row["status"], row["task"], row["reviewer"], row["held_by_you"]) == (
        audit.pk,
        "OPEN",
        audit.review.task_id,
        "rita",
        False,
    )
    assert _api(reviewer).get(reverse("api-audits")).json()["results"] == []
    assert _api(contractor).get(reverse("api-audits")).status_code == 403
    assert _api(admin_user).get(reverse("api-audits")).status_code == 403
    assert APIClient().get(reverse("api-audits")).status_code == 401


def test_the_api_takes_and_decides_with_the_services_rules(audit, rex, ted, reviewer):
    take = reverse("api-audit-take", args=[audit.pk])
    decide_url = reverse("api-audit-decide", args=[audit.pk])

    own = _api(reviewer).post(take)
    assert own.status_code == 403 and own.json()["detail"] == "You cannot audit your own review."
    early = _api(rex).post(decide_url, {"overturn": False}, format="json")
    assert early.status_code == 409 and early.json()["detail"] == (
        "Take this audit before deciding it."
    )

    taken = _api(rex).post(take)
    assert taken.status_code == 200
    assert (taken.json()["status"], taken.json()["held_by_you"]) == ("TAKEN", True)
    second = _api(ted).post(take)
    assert second.status_code == 409
    assert second.json()["detail"] == "This audit is already taken by another reviewer."

    not_holder = _api(ted).post(decide_url, {"overturn": False}, format="json")
    assert not_holder.status_code == 403
    bare = _api(rex).post(decide_url, {"overturn": True}, format="json")
    assert bare.status_code == 400
    assert bare.json()["detail"] == "Overturning a decision needs a note saying why."
    missing = _api(rex).post(decide_url, {"note": "x"}, format="json")
    assert missing.status_code == 400 and "overturn" in missing.json()
    audit.refresh_from_db()
    assert audit.status == ReviewAudit.Status.TAKEN

    done = _api(rex).post(decide_url, {"overturn": True, "note": "No test."}, format="json")
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["note"]) == ("OVERTURNED", "No test.")
    audit.refresh_from_db()
    assert (audit.status, audit.auditor, audit.note) == ("OVERTURNED", rex, "No test.")


def test_the_api_answers_404_for_an_unknown_audit(rex, db):
    assert _api(rex).post(reverse("api-audit-take", args=[999_999])).status_code == 404


# --- Who may do what: every audit page and endpoint x every persona -----------------------

L = "login"
PERSONAS = ("anonymous", "owner", "other_contractor", "audited", "auditor", "admin")
# fmt: off
AUDIT_MATRIX = {
    #                                          anon owner other audited auditor admin
    "page_queue":  ("get", "reviews:audits",       (L, 403, 403, 200, 200, 403)),
    "page_detail": ("get", "reviews:audit_detail", (L, 403, 403, 403, 200, 200)),
    "page_take":   ("post", "reviews:audit_take",  (L, 403, 403, 403, 302, 403)),
    "page_decide": ("post", "reviews:audit_decide", (L, 403, 403, 403, 302, 403)),
    "api_list":    ("get", "api-audits",           (401, 403, 403, 200, 200, 403)),
    "api_take":    ("post", "api-audit-take",      (401, 403, 403, 403, 200, 403)),
    "api_decide":  ("post", "api-audit-decide",    (401, 403, 403, 403, 200, 403)),
}
# fmt: on


def _audit_rows() -> set:
    return set(ReviewAudit.objects.values_list("pk", "status", "auditor_id", "note", "decided_at"))


def _snapshot() -> tuple:
    return (
        _audit_rows(),
        set(Review.objects.values_list("pk", "decision")),
        set(Task.objects.values_list("pk", "status")),
    )


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("case", list(AUDIT_MATRIX))
def test_audit_authorization_matrix(
    client, audit, case, persona, contractor, other_contractor, reviewer, rex, admin_user
):
    method, url_name, statuses = AUDIT_MATRIX[case]
    expected = statuses[PERSONAS.index(persona)]
    users = {
        "anonymous": None,
        "owner": contractor,
        "other_contractor": other_contractor,
        "audited": reviewer,
        "auditor": rex,
        "admin": admin_user,
    }
    user = users[persona]
    if case.endswith("decide"):
        audit_take(audit=audit, by=rex)
    args = [] if case in ("page_queue", "api_list") else [audit.pk]
    url = reverse(url_name, args=args)
    is_api = url_name.startswith("api-")
    data = (
        {"overturn": True, "note": "No test."}
        if is_api
        else {"outcome": "overturn", "note": "No test."}
    )
    http = APIClient() if is_api else client
    if user is not None:
        if is_api:
            http.force_authenticate(user=user)
        else:
            http.force_login(user)
    before = _snapshot()

    if method == "get":
        response = http.get(url)
    elif is_api:
        response = http.post(url, data, format="json")
    else:
        response = http.post(url, data)

    if expected == L:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login") + "?next=")
    else:
        assert response.status_code == expected
    after = _snapshot()
    if method == "post" and expected in (200, 302):
        audit.refresh_from_db()
        wanted = "OVERTURNED" if case.endswith("decide") else "TAKEN"
        assert (audit.status, audit.auditor) == (wanted, rex)
        assert after[1:] == before[1:]
    else:
        # Refused (or a read): nothing changed, and a refusal tells nothing of the task.
        assert after == before
        if expected not in (200, L):
            assert b"Guard division" not in response.content
