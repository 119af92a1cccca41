"""Who may do what in review and pay: every page and API endpoint, for every persona.

Each case checks the status code and that no row changed where it must not: reviews and
their notes, claims, task states, the audit trail, earnings and notifications.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from marlin import roles
from reviews.claim_services import review_claim
from reviews.models import Earning, Notification, Review, ReviewClaim, ReviewNote
from tasks.models import Task, TaskEvent, Turn
from tests.api_clients import api_client_for
from tests.factories import UserFactory
from tests.tasks.helpers import create_task, decide, generate_all, submit

PERSONAS = ("anonymous", "owner", "other_contractor", "reviewer", "self_reviewer", "admin")


# ---------------------------------------------------------------------------------------
# The world every case runs in
# ---------------------------------------------------------------------------------------


@dataclass
class World:
    users: dict  # persona -> User (None for anonymous)
    task: Task  # carol's submitted task, the target of everyone but the self-reviewer
    own_task: Task  # sam's submitted task; sam is a reviewer and a contractor
    accepted: Task  # another of carol's tasks, accepted by rex
    draft: Task  # a task of carol's that was generated but never submitted
    rex: object  # a second reviewer

    def target(self, persona: str) -> Task:
        return self.own_task if persona == "self_reviewer" else self.task


def _submitted(*, contractor, project, repository) -> Task:
    return submit(
        generate_all(create_task(contractor=contractor, project=project, repository=repository))
    )


@pytest.fixture
def world(ready_repository, project, contractor, other_contractor, reviewer, admin_user):
    sam = UserFactory(username="sam", role=roles.REVIEWER)
    sam.groups.add(Group.objects.get(name=roles.CONTRACTOR))
    rex = UserFactory(username="rex", role=roles.REVIEWER)

    task = _submitted(contractor=contractor, project=project, repository=ready_repository)
    own_task = _submitted(contractor=sam, project=project, repository=ready_repository)
    accepted = _submitted(contractor=contractor, project=project, repository=ready_repository)
    decide(accepted, reviewer=rex, decision="ACCEPT")
    accepted.refresh_from_db()
    draft = generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )
    assert draft.status == Task.Status.AWAITING_PREFERENCE

    users = {
        "anonymous": None,
        "owner": contractor,
        "other_contractor": other_contractor,
        "reviewer": reviewer,
        "self_reviewer": sam,
        "admin": admin_user,
    }
    # Everyone has an unread notification, so marking "mine" as read can be told apart
    # from marking everybody's.
    for user in [*filter(None, users.values()), rex]:
        Notification.objects.create(user=user, message=f"Hello {user.username}")
    return World(users=users, task=task, own_task=own_task, accepted=accepted, draft=draft, rex=rex)


def snapshot() -> dict:
    """Every row the review and pay flows can write, in a comparable form."""
    return {
        "reviews": set(
            Review.objects.values_list(
                "pk", "task_id", "round", "reviewer_id", "decision", "feedback", "rejects_task"
            )
        ),
        "notes": set(
            ReviewNote.objects.values_list("pk", "review_id", "turn_id", "slot", "field", "text")
        ),
        "claims": set(
            ReviewClaim.objects.values_list(
                "pk", "task_id", "round", "reviewer_id", "expires_at", "ended_at", "ending"
            )
        ),
        "tasks": set(Task.objects.values_list("pk", "status", "round")),
        "events": set(TaskEvent.objects.values_list("pk", "task_id", "kind", "to_status")),
        "earnings": set(Earning.objects.values_list("pk", "task_id", "contractor_id", "amount")),
        "notifications": set(Notification.objects.values_list("pk", "user_id", "read_at")),
    }


def assert_only_changed(before: dict, after: dict, *keys: str) -> None:
    """Every part of the snapshot outside `keys` is exactly as it was."""
    for key in before:
        if key not in keys:
            assert after[key] == before[key], f"{key} changed"


def client_for(user, *, api: bool):
    client = APIClient() if api else Client()
    if user is not None:
        client.force_login(user)
    return client


def hold(world: World) -> None:
    """The reviewer (rita) claims both submitted tasks, as if she had opened them."""
    review_claim(task=world.task, reviewer=world.users["reviewer"])
    review_claim(task=world.own_task, reviewer=world.users["reviewer"])


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# ---------------------------------------------------------------------------------------
# The matrix: every endpoint x every persona
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    url_name: str
    method: str = "get"
    per_task: bool = False
    data: dict | None = None
    held: bool = False  # the target task is claimed by the reviewer before the call

    @property
    def is_api(self) -> bool:
        return self.url_name.startswith("api-")

    def url(self, task: Task) -> str:
        return reverse(self.url_name, args=[task.pk] if self.per_task else [])

    def send(self, client, task: Task):
        if self.method == "get":
            return client.get(self.url(task), self.data or {})
        if self.is_api:
            return client.post(self.url(task), self.data or {}, format="json")
        return client.post(self.url(task), self.data or {})


ACCEPT = {"decision": "ACCEPT", "feedback": ""}
CALLS = {
    "queue": Call("reviews:queue"),
    "detail": Call("reviews:detail", per_task=True),
    "api_detail": Call("api-review-task", per_task=True),
    "claim": Call("reviews:claim", "post", per_task=True),
    "release": Call("reviews:release", "post", per_task=True, held=True),
    "decide": Call("reviews:decide", "post", per_task=True, data=ACCEPT, held=True),
    "earnings": Call("reviews:earnings"),
    "payouts": Call("reviews:payouts"),
    "payouts_csv": Call("reviews:payouts", data={"format": "csv"}),
    "metrics": Call("reviews:metrics"),
    "dashboard": Call("reviews:dashboard"),
    "notifications": Call("reviews:notifications"),
    "notifications_read": Call("reviews:notifications_read", "post"),
    "api_queue": Call("api-review-queue"),
    "api_claim": Call("api-review-claim", "post", per_task=True),
    "api_release": Call("api-review-release", "post", per_task=True, held=True),
    "api_decide": Call("api-review-decide", "post", per_task=True, data=ACCEPT, held=True),
    "api_earnings": Call("api-earnings"),
    "api_payouts": Call("api-payouts"),
    "api_metrics": Call("api-reviewer-metrics"),
    "api_dashboard": Call("api-dashboard"),
    "api_notifications": Call("api-notifications"),
    "api_notifications_read": Call("api-notifications-read", "post"),
}

L = "login"  # a redirect to the login page
# Anonymous API calls get 403, not 401: SessionAuthentication comes first and sends no
# WWW-Authenticate header, so DRF turns NotAuthenticated into 403.
# fmt: off
MATRIX = {
    #                         anon  owner other reviewer self admin
    "queue":                  (L,   403,  403,  200,     200, 403),
    "detail":                 (L,   403,  403,  200,     403, 200),
    "claim":                  (L,   403,  403,  302,     403, 403),
    "release":                (L,   403,  403,  302,     403, 403),
    "decide":                 (L,   403,  403,  302,     403, 403),
    "earnings":               (L,   200,  200,  403,     200, 403),
    "payouts":                (L,   403,  403,  403,     403, 200),
    "payouts_csv":            (L,   403,  403,  403,     403, 200),
    "metrics":                (L,   403,  403,  403,     403, 200),
    "dashboard":              (L,   403,  403,  403,     403, 200),
    "notifications":          (L,   200,  200,  200,     200, 200),
    "notifications_read":     (L,   302,  302,  302,     302, 302),
    "api_queue":              (401, 403,  403,  200,     200, 403),
    "api_detail":             (401, 403,  403,  200,     403, 200),
    "api_claim":              (401, 403,  403,  201,     403, 403),
    "api_release":            (401, 403,  403,  204,     403, 403),
    "api_decide":             (401, 403,  403,  201,     403, 403),
    "api_earnings":           (401, 200,  200,  403,     200, 403),
    "api_payouts":            (401, 403,  403,  403,     403, 200),
    "api_metrics":            (401, 403,  403,  403,     403, 200),
    "api_dashboard":          (401, 403,  403,  403,     403, 200),
    "api_notifications":      (401, 200,  200,  200,     200, 200),
    "api_notifications_read": (401, 200,  200,  200,     200, 200),
}
# fmt: on

# Where an allowed HTML POST sends the user next.
REDIRECTS = {
    "claim": lambda task: reverse("reviews:detail", args=[task.pk]),
    "release": lambda task: reverse("reviews:queue"),
    "decide": lambda task: reverse("reviews:queue"),
    "notifications_read": lambda task: reverse("reviews:notifications"),
}


def _claimed(world, user, before, after):
    (new,) = after["claims"] - before["claims"]
    assert not before["claims"] - after["claims"]
    _pk, task_id, round_, reviewer_id, _expires, ended_at, _ending = new
    assert (task_id, round_, reviewer_id, ended_at) == (world.task.pk, 1, user.pk, None)
    assert len(after["events"] - before["events"]) == 1
    assert_only_changed(before, after, "claims", "events")


def _released(world, user, before, after):
    (old,) = before["claims"] - after["claims"]
    (new,) = after["claims"] - before["claims"]
    assert old[0] == new[0] and new[1] == world.task.pk and new[3] == user.pk
    assert new[5] is not None and new[6] == ReviewClaim.Ending.RELEASED
    assert len(after["events"] - before["events"]) == 1
    assert_only_changed(before, after, "claims", "events")


def _decided(world, user, before, after):
    (review,) = after["reviews"] - before["reviews"]
    assert review[1:] == (world.task.pk, 1, user.pk, "ACCEPT", "", False)
    assert (world.task.pk, "ACCEPTED", 1) in after["tasks"] - before["tasks"]
    assert len(after["tasks"] - before["tasks"]) == 1
    (earning,) = after["earnings"] - before["earnings"]
    assert earning[1:3] == (world.task.pk, world.task.contractor_id)
    (notification,) = after["notifications"] - before["notifications"]
    assert notification[1] == world.task.contractor_id
    (ended,) = after["claims"] - before["claims"]
    assert ended[1] == world.task.pk and ended[6] == ReviewClaim.Ending.DECIDED
    assert after["events"] > before["events"]
    assert_only_changed(
        before, after, "reviews", "tasks", "earnings", "notifications", "claims", "events"
    )


def _read(world, user, before, after):
    changed = {(pk, user_id) for pk, user_id, _ in before["notifications"] ^ after["notifications"]}
    assert changed, "nothing was marked as read"
    assert {user_id for _, user_id in changed} == {user.pk}
    assert not Notification.objects.filter(user=user, read_at__isnull=True).exists()
    assert Notification.objects.exclude(user=user).filter(read_at__isnull=True).exists()
    assert_only_changed(before, after, "notifications")


def _opened(world, user, before, after):
    # Opening the Notifications page reads what it shows: the user's own, nobody else's.
    changed = {(pk, user_id) for pk, user_id, _ in before["notifications"] ^ after["notifications"]}
    assert changed, "opening the page marked nothing as read"
    assert {user_id for _, user_id in changed} == {user.pk}
    assert Notification.objects.exclude(user=user).filter(read_at__isnull=True).exists()
    assert_only_changed(before, after, "notifications")


EFFECTS = {
    "notifications": _opened,
    "claim": _claimed,
    "api_claim": _claimed,
    "release": _released,
    "api_release": _released,
    "decide": _decided,
    "api_decide": _decided,
    "notifications_read": _read,
    "api_notifications_read": _read,
}

MATRIX_CASES = [
    pytest.param(name, persona, expected, id=f"{name}-{persona}")
    for name, row in MATRIX.items()
    for persona, expected in zip(PERSONAS, row, strict=True)
]


@pytest.mark.parametrize(("name", "persona", "expected"), MATRIX_CASES)
def test_authorization_matrix(world, name, persona, expected):
    call = CALLS[name]
    user = world.users[persona]
    task = world.target(persona)
    if call.held:
        hold(world)
    before = snapshot()

    response = call.send(client_for(user, api=call.is_api), task)

    after = snapshot()
    if expected == L:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login") + "?next=")
    else:
        assert response.status_code == expected
    if name in REDIRECTS and expected == 302:
        assert response["Location"] == REDIRECTS[name](task)
    if name in EFFECTS and expected in (200, 201, 204, 302):
        EFFECTS[name](world, user, before, after)
    else:
        assert after == before


# The dataset export (page, jobs, downloads) is not part of review and pay.
NOT_REVIEW_OR_PAY = {
    "reviews:export",
    "reviews:export_job",
    "reviews:export_download",
    "api-exports",
    "api-export",
    "api-export-download",
}
# Line comments have their own matrix (page and API, every persona and rule):
# tests/reviews/test_line_comments_views.py and tests/test_api_authorization.py.
LINE_COMMENTS = {
    "reviews:line_comment_add",
    "reviews:line_comment_delete",
    "api-line-comments",
    "api-line-comment",
}


# Quality control has its own matrices: judging tasks in
# tests/reviews/test_quality_judging_pages.py and tests/test_api_authorization.py, audits in
# tests/reviews/test_quality_audits.py.
QUALITY = {
    "reviews:judging",
    "reviews:judging_next",
    "reviews:judging_detail",
    "reviews:judging_heartbeat",
    "api-judging-tasks",
    "api-judging-task-next",
    "api-judging-task",
    "api-judging-task-submit",
    "reviews:audits",
    "reviews:audit_detail",
    "reviews:audit_take",
    "reviews:audit_decide",
    "api-audits",
    "api-audit-take",
    "api-audit-decide",
}


def test_the_matrix_covers_every_review_and_pay_route():
    from reviews import api_urls, urls

    html = {f"reviews:{p.name}" for p in urls.urlpatterns}
    api = {p.name for p in api_urls.urlpatterns}
    assert (NOT_REVIEW_OR_PAY | LINE_COMMENTS | QUALITY).issubset(html | api)
    covered = {call.url_name for call in CALLS.values()}
    assert (html | api) - NOT_REVIEW_OR_PAY - LINE_COMMENTS - QUALITY == covered


# ---------------------------------------------------------------------------------------
# What the allowed pages show: nothing of anyone else's
# ---------------------------------------------------------------------------------------


def test_the_admin_reads_a_task_without_any_way_to_decide_it(world):
    hold(world)  # even with a claim open, the admin only reads
    response = client_for(world.users["admin"], api=False).get(
        reverse("reviews:detail", args=[world.task.pk])
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert f"Review #{world.task.pk}" in html
    assert 'id="review-form"' not in html
    assert 'id="claim-button"' not in html
    assert reverse("reviews:decide", args=[world.task.pk]) not in html
    assert response.context.get("form") is None


def test_a_reviewer_sees_the_claim_button_and_no_form_before_claiming(world):
    client = client_for(world.users["reviewer"], api=False)
    html = client.get(reverse("reviews:detail", args=[world.task.pk])).content.decode()
    assert 'id="claim-button"' in html and 'id="review-form"' not in html
    client.post(reverse("reviews:claim", args=[world.task.pk]))
    html = client.get(reverse("reviews:detail", args=[world.task.pk])).content.decode()
    assert 'id="review-form"' in html


@pytest.mark.parametrize("api", [False, True], ids=["html", "api"])
def test_the_queue_never_lists_a_reviewers_own_task(world, api):
    client = client_for(world.users["self_reviewer"], api=api)
    if api:
        ids = {row["id"] for row in client.get(reverse("api-review-queue")).json()["results"]}
        assert ids == {world.task.pk}
    else:
        tasks = list(client.get(reverse("reviews:queue")).context["tasks"])
        assert [t.pk for t in tasks] == [world.task.pk]
    # Only submitted tasks are in the queue: the accepted one and the draft are not.
    rita = client_for(world.users["reviewer"], api=True)
    ids = {row["id"] for row in rita.get(reverse("api-review-queue")).json()["results"]}
    assert ids == {world.task.pk, world.own_task.pk}


@pytest.mark.parametrize("persona", ["owner", "other_contractor", "self_reviewer"])
@pytest.mark.parametrize("api", [False, True], ids=["html", "api"])
def test_earnings_list_only_the_contractors_own_tasks(world, persona, api):
    user = world.users[persona]
    mine = set(Task.objects.filter(contractor=user).values_list("pk", flat=True))
    client = client_for(user, api=api)
    if api:
        ids = {row["id"] for row in client.get(reverse("api-earnings")).json()["tasks"]}
    else:
        ids = {t.pk for t in client.get(reverse("reviews:earnings")).context["summary"].tasks}
    assert ids == mine
    if persona == "owner":
        assert {world.task.pk, world.accepted.pk, world.draft.pk} <= ids
    else:
        assert not ids & {world.task.pk, world.accepted.pk, world.draft.pk}


@pytest.mark.parametrize("persona", ["owner", "other_contractor", "reviewer", "admin"])
@pytest.mark.parametrize("api", [False, True], ids=["html", "api"])
def test_notifications_list_only_the_users_own(world, persona, api):
    user = world.users[persona]
    mine = set(Notification.objects.filter(user=user).values_list("pk", flat=True))
    assert mine
    client = client_for(user, api=api)
    if api:
        ids = {row["id"] for row in client.get(reverse("api-notifications")).json()["results"]}
    else:
        shown = client.get(reverse("reviews:notifications")).context["notifications"]
        ids = {n.notification.pk for n in shown}
    assert ids == mine


def test_the_payout_csv_streams_for_an_admin(world):
    response = client_for(world.users["admin"], api=False).get(
        reverse("reviews:payouts"), {"format": "csv"}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("contractor_id,username,email")
    assert len(lines) == 2 and ",carol," in lines[1]


@pytest.mark.parametrize("name", ["payouts", "payouts_csv", "metrics"])
def test_a_reviewer_with_the_contractor_role_still_cannot_see_pay(world, name):
    call = CALLS[name]
    response = call.send(client_for(world.users["self_reviewer"], api=False), world.task)
    assert response.status_code == 403
    assert not response.get("Content-Type", "").startswith("text/csv")


# ---------------------------------------------------------------------------------------
# Missing and not-yet-submitted tasks
# ---------------------------------------------------------------------------------------

TASK_CALLS = [
    "detail",
    "claim",
    "release",
    "decide",
    "api_detail",
    "api_claim",
    "api_release",
    "api_decide",
]


@pytest.mark.parametrize("which", ["missing", "draft"])
@pytest.mark.parametrize("name", TASK_CALLS)
def test_a_missing_or_unsubmitted_task_is_404_for_a_reviewer(world, name, which):
    call = CALLS[name]
    pk = world.draft.pk if which == "draft" else Task.objects.order_by("-pk").first().pk + 1000
    before = snapshot()
    client = client_for(world.users["reviewer"], api=call.is_api)
    response = call.send(client, Task(pk=pk))
    assert response.status_code == 404
    assert snapshot() == before


@pytest.mark.parametrize("which", ["missing", "draft"])
def test_a_missing_or_unsubmitted_task_is_404_for_an_admin(world, which):
    pk = world.draft.pk if which == "draft" else Task.objects.order_by("-pk").first().pk + 1000
    response = client_for(world.users["admin"], api=False).get(reverse("reviews:detail", args=[pk]))
    assert response.status_code == 404


def test_a_self_reviewers_own_unsubmitted_task_is_404_not_403(world, project, ready_repository):
    sam = world.users["self_reviewer"]
    draft = generate_all(create_task(contractor=sam, project=project, repository=ready_repository))
    before = snapshot()
    response = client_for(sam, api=False).post(reverse("reviews:claim", args=[draft.pk]))
    assert response.status_code == 404
    assert snapshot() == before


@pytest.mark.parametrize("name", ["claim", "release", "decide", "notifications_read"])
def test_post_only_pages_refuse_get(world, name):
    call = CALLS[name]
    hold(world)
    before = snapshot()
    response = client_for(world.users["reviewer"], api=False).get(call.url(world.task))
    assert response.status_code == 405
    assert snapshot() == before


# ---------------------------------------------------------------------------------------
# Authentication details: CSRF on session POSTs, tokens for the API
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["claim", "notifications_read", "api_claim", "api_decide"])
def test_a_session_post_without_a_csrf_token_is_refused(world, name):
    call = CALLS[name]
    if call.held:
        hold(world)
    reviewer = world.users["reviewer"]
    client = (
        APIClient(enforce_csrf_checks=True) if call.is_api else Client(enforce_csrf_checks=True)
    )
    client.force_login(reviewer)
    before = snapshot()
    response = call.send(client, world.task)
    assert response.status_code == 403
    assert snapshot() == before


def test_the_api_accepts_a_reviewers_token(world):
    reviewer = world.users["reviewer"]
    client = api_client_for(reviewer)
    response = client.post(reverse("api-review-claim", args=[world.task.pk]))
    assert response.status_code == 201
    assert ReviewClaim.objects.filter(task=world.task, reviewer=reviewer).exists()


@pytest.mark.parametrize("persona", ["owner", "other_contractor", "admin"])
def test_a_non_reviewers_token_cannot_claim_or_decide(world, persona):
    client = api_client_for(world.users[persona])
    before = snapshot()
    for url_name, data in [("api-review-claim", {}), ("api-review-decide", ACCEPT)]:
        response = client.post(reverse(url_name, args=[world.task.pk]), data, format="json")
        assert response.status_code == 403
    assert snapshot() == before


def test_a_bad_token_is_refused(world):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    before = snapshot()
    response = client.post(reverse("api-review-claim", args=[world.task.pk]))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert "token" in response.json()["detail"].lower()
    assert snapshot() == before


# ---------------------------------------------------------------------------------------
# Wrong state: a clear error, and nothing changes
# ---------------------------------------------------------------------------------------


def test_claiming_an_accepted_task_is_refused_on_the_page(world):
    before = snapshot()
    response = client_for(world.users["reviewer"], api=False).post(
        reverse("reviews:claim", args=[world.accepted.pk])
    )
    assert response.status_code == 302 and response["Location"] == reverse("reviews:queue")
    assert any("only submitted tasks can be claimed" in m for m in messages_of(response))
    assert snapshot() == before


def test_claiming_an_accepted_task_is_refused_by_the_api(world):
    before = snapshot()
    response = client_for(world.users["reviewer"], api=True).post(
        reverse("api-review-claim", args=[world.accepted.pk])
    )
    assert response.status_code == 409
    assert "only submitted tasks can be claimed" in response.json()["detail"]
    assert snapshot() == before


@pytest.mark.parametrize("decision", ["ACCEPT", "BOUNCE"])
def test_deciding_an_accepted_task_is_a_conflict(world, decision):
    data = {"decision": decision, "feedback": "Looks different to me."}
    reviewer = world.users["reviewer"]
    before = snapshot()
    page = client_for(reviewer, api=False).post(
        reverse("reviews:decide", args=[world.accepted.pk]), data
    )
    api = client_for(reviewer, api=True).post(
        reverse("api-review-decide", args=[world.accepted.pk]), data, format="json"
    )
    assert page.status_code == 409
    assert "there is nothing to decide" in page.content.decode()
    assert "no submission waiting for a decision" in page.content.decode()
    assert api.status_code == 409
    assert "no submission waiting for a decision" in api.json()["detail"]
    assert snapshot() == before


def test_the_deciding_reviewer_repeating_the_decision_changes_nothing(world):
    # The "double click" rule: the same reviewer's same decision returns the earlier one.
    before = snapshot()
    response = client_for(world.rex, api=True).post(
        reverse("api-review-decide", args=[world.accepted.pk]), ACCEPT, format="json"
    )
    assert response.status_code == 201
    assert response.json()["id"] == Review.objects.get(task=world.accepted).pk
    assert snapshot() == before
    # A different decision from them on the decided round is a conflict.
    response = client_for(world.rex, api=True).post(
        reverse("api-review-decide", args=[world.accepted.pk]),
        {"decision": "BOUNCE", "feedback": "Changed my mind."},
        format="json",
    )
    assert response.status_code == 409
    assert snapshot() == before


@pytest.mark.parametrize("api", [False, True], ids=["html", "api"])
def test_deciding_without_holding_the_claim_is_a_conflict(world, api):
    before = snapshot()
    client = client_for(world.users["reviewer"], api=api)
    url = reverse("api-review-decide" if api else "reviews:decide", args=[world.task.pk])
    response = client.post(url, ACCEPT, format="json") if api else client.post(url, ACCEPT)
    assert response.status_code == 409
    if api:
        assert "Claim this task before deciding it" in response.json()["detail"]
    assert snapshot() == before


def test_the_page_says_why_a_decision_without_the_claim_was_refused(world):
    # Without the claim the page has no decision form to carry the error; it must still
    # say why (a message at the top).
    response = client_for(world.users["reviewer"], api=False).post(
        reverse("reviews:decide", args=[world.task.pk]), ACCEPT
    )
    assert response.status_code == 409
    assert "Claim this task before deciding it" in response.content.decode()


@pytest.mark.parametrize("api", [False, True], ids=["html", "api"])
def test_deciding_a_task_another_reviewer_holds_is_a_conflict(world, api):
    review_claim(task=world.task, reviewer=world.rex)
    before = snapshot()
    client = client_for(world.users["reviewer"], api=api)
    url = reverse("api-review-decide" if api else "reviews:decide", args=[world.task.pk])
    response = client.post(url, ACCEPT, format="json") if api else client.post(url, ACCEPT)
    assert response.status_code == 409
    if api:
        assert "already claimed by another reviewer" in response.json()["detail"]
    assert snapshot() == before


@pytest.mark.parametrize("api", [False, True], ids=["html", "api"])
def test_claiming_a_task_another_reviewer_holds_is_refused(world, api):
    review_claim(task=world.task, reviewer=world.rex)
    before = snapshot()
    client = client_for(world.users["reviewer"], api=api)
    url = reverse("api-review-claim" if api else "reviews:claim", args=[world.task.pk])
    response = client.post(url)
    if api:
        assert response.status_code == 409
        assert "already claimed by another reviewer" in response.json()["detail"]
    else:
        assert response.status_code == 302 and response["Location"] == reverse("reviews:queue")
        assert any("already claimed" in m for m in messages_of(response))
    assert snapshot() == before


@pytest.mark.parametrize("api", [False, True], ids=["html", "api"])
def test_releasing_another_reviewers_claim_is_refused(world, api):
    review_claim(task=world.task, reviewer=world.rex)
    before = snapshot()
    client = client_for(world.users["reviewer"], api=api)
    url = reverse("api-review-release" if api else "reviews:release", args=[world.task.pk])
    response = client.post(url)
    if api:
        assert response.status_code == 409
        assert "only they can release it" in response.json()["detail"]
    else:
        assert response.status_code == 302
        assert response["Location"] == reverse("reviews:detail", args=[world.task.pk])
        assert any("only they can release it" in m for m in messages_of(response))
    assert snapshot() == before
    assert ReviewClaim.objects.get(task=world.task, ended_at__isnull=True).reviewer == world.rex


# ---------------------------------------------------------------------------------------
# Bad decisions: nothing is stored
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("feedback", ["", "   \n "], ids=["empty", "blank"])
@pytest.mark.parametrize("api", [False, True], ids=["html", "api"])
def test_a_bounce_without_feedback_is_rejected(world, api, feedback):
    hold(world)
    before = snapshot()
    data = {"decision": "BOUNCE", "feedback": feedback}
    client = client_for(world.users["reviewer"], api=api)
    url = reverse("api-review-decide" if api else "reviews:decide", args=[world.task.pk])
    response = client.post(url, data, format="json") if api else client.post(url, data)
    assert response.status_code == 400
    if api:
        assert "needs feedback" in response.json()["detail"]
    else:
        assert "Bouncing a task needs feedback" in response.content.decode()
    assert snapshot() == before


@pytest.mark.parametrize("field", ["", "preference", "justification", "A-AXIS"])
@pytest.mark.parametrize("api", [False, True], ids=["html", "api"])
def test_a_note_on_another_tasks_turn_is_rejected(world, api, field):
    hold(world)
    foreign = Turn.objects.filter(task=world.accepted).first()
    own = Turn.objects.filter(task=world.task).first()
    axis = world.task.project.axis_keys[0]
    field = field.replace("AXIS", axis)
    before = snapshot()
    client = client_for(world.users["reviewer"], api=api)
    if api:
        slot, _, name = field.rpartition("-")
        notes = [
            {"turn": own.pk, "text": "Fine here."},
            {"turn": foreign.pk, "slot": slot, "field": name, "text": "Smuggled in."},
        ]
        response = client.post(
            reverse("api-review-decide", args=[world.task.pk]),
            {"decision": "BOUNCE", "feedback": "Redo it.", "notes": notes},
            format="json",
        )
        detail = response.json()["detail"]
    else:
        suffix = f"-{field}" if field else ""
        response = client.post(
            reverse("reviews:decide", args=[world.task.pk]),
            {
                "decision": "BOUNCE",
                "feedback": "Redo it.",
                f"note-{own.pk}": "Fine here.",
                f"note-{foreign.pk}{suffix}": "Smuggled in.",
            },
        )
        detail = response.content.decode()
    assert response.status_code == 400
    assert "not part of this task" in detail
    assert snapshot() == before


@pytest.mark.parametrize("api", [False, True], ids=["html", "api"])
def test_extra_keys_in_a_decision_are_ignored(world, api):
    world.task.project.max_rounds = 3
    world.task.project.save(update_fields=["max_rounds"])
    hold(world)
    rita = world.users["reviewer"]
    before = snapshot()
    data = {
        "decision": "BOUNCE",
        "feedback": "Scores contradict the justification.",
        "reviewer": world.rex.pk,
        "round": 3,
        "rejects_task": True,
        "status": "ACCEPTED",
        "task_status": "ACCEPTED",
        "task": world.own_task.pk,
        "id": 424242,
        "claimed_at": "2000-01-01T00:00:00Z",
        "created_at": "2000-01-01T00:00:00Z",
    }
    client = client_for(rita, api=api)
    url = reverse("api-review-decide" if api else "reviews:decide", args=[world.task.pk])
    response = client.post(url, data, format="json") if api else client.post(url, data)
    assert response.status_code == (201 if api else 302)
    review = Review.objects.get(task=world.task)
    assert review.pk != 424242
    assert (review.reviewer, review.round, review.decision, review.rejects_task) == (
        rita,
        1,
        "BOUNCE",
        False,
    )
    assert review.created_at.year > 2000 and review.claimed_at.year > 2000
    if api:
        body = response.json()
        assert (body["task"], body["round"], body["rejects_task"]) == (world.task.pk, 1, False)
        assert body["task_status"] == "BOUNCED"
    world.task.refresh_from_db()
    assert world.task.status == Task.Status.BOUNCED
    after = snapshot()
    # Nothing about the other tasks changed, no earning was made for a bounce.
    assert {pk for pk, *_ in after["tasks"] - before["tasks"]} == {world.task.pk}
    assert after["earnings"] == before["earnings"]
    assert {r[1] for r in after["reviews"] - before["reviews"]} == {world.task.pk}
