"""The line-comment endpoints of the pages and the API: who may call them, what they return."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from reviews.claim_services import review_claim
from reviews.comment_services import comment_path, line_comment_add
from reviews.models import LineComment
from tasks.diffview import candidate_diff_view
from tests.api_clients import api_client_for
from tests.tasks.helpers import create_task, decide, generate_all, submit


@pytest.fixture
def awaiting(ready_repository, project, contractor):
    return generate_all(
        create_task(contractor=contractor, project=project, repository=ready_repository)
    )


def cand(task, slot="A"):
    return task.turns.get().candidates.get(slot=slot)


def place(candidate) -> dict:
    file = candidate_diff_view(candidate).files[0]
    line = next(d.new_no for h in file.hunks for d in h.lines if d.new_no)
    return {"path": comment_path(file), "side": "new", "line": line}


def page_client(client, user):
    client.force_login(user)
    return client


def add_url(candidate) -> str:
    return reverse("reviews:line_comment_add", args=[candidate.pk])


def test_the_contractor_adds_a_comment_from_the_page(client, awaiting, contractor):
    a = cand(awaiting)
    response = page_client(client, contractor).post(add_url(a), {**place(a), "text": "Hmm."})
    assert response.status_code == 201
    comment = LineComment.objects.get()
    assert response.json() == {
        "id": comment.pk, "candidate": a.pk, **place(a), "end_line": None, "text": "Hmm.",
        "role": "contractor", "round": 1, "author": "You", "is_draft": False,
        "delete_url": reverse("reviews:line_comment_delete", args=[comment.pk]),
    }  # fmt: skip


def test_a_refusal_is_a_message_and_stores_nothing(client, awaiting, contractor):
    a = cand(awaiting)
    response = page_client(client, contractor).post(
        add_url(a), {**place(a), "line": 999, "text": "Hmm."}
    )
    assert response.status_code == 400
    assert "Line 999 after the change is not shown" in response.json()["detail"]
    response = client.post(add_url(a), {**place(a), "side": "left", "text": "Hmm."})
    assert response.status_code == 400 and response.json()["detail"].startswith("side:")
    assert not LineComment.objects.exists()


@pytest.mark.parametrize("persona", ["other_contractor", "outsider"])
def test_a_stranger_gets_404_and_writes_nothing(client, request, awaiting, persona):
    a = cand(awaiting)
    user = request.getfixturevalue(persona)
    response = page_client(client, user).post(add_url(a), {**place(a), "text": "Mine now."})
    assert response.status_code == 404
    assert not LineComment.objects.exists()


def test_a_reviewer_cannot_see_a_task_before_it_is_submitted(client, awaiting, reviewer):
    a = cand(awaiting)
    response = page_client(client, reviewer).post(add_url(a), {**place(a), "text": "Early."})
    assert response.status_code == 404


def test_a_reviewer_without_the_claim_is_refused(client, awaiting, reviewer):
    submit(awaiting)
    a = cand(awaiting)
    response = page_client(client, reviewer).post(add_url(a), {**place(a), "text": "Hm."})
    assert response.status_code == 409
    assert "Claim this task" in response.json()["detail"]
    review_claim(task=awaiting, reviewer=reviewer)
    response = client.post(add_url(a), {**place(a), "text": "Hm."})
    assert response.status_code == 201 and response.json()["is_draft"] is True


def test_the_endpoints_take_post_only(client, awaiting, contractor):
    response = page_client(client, contractor).get(add_url(cand(awaiting)))
    assert response.status_code == 405


def test_deleting_someone_elses_comment_is_refused(
    client, awaiting, contractor, other_contractor, reviewer
):
    a = cand(awaiting)
    comment = line_comment_add(candidate=a, by=contractor, text="Mine.", **place(a))
    url = reverse("reviews:line_comment_delete", args=[comment.pk])
    assert page_client(client, other_contractor).post(url).status_code == 404
    submit(awaiting)
    review_claim(task=awaiting, reviewer=reviewer)
    response = page_client(client, reviewer).post(url)
    assert response.status_code == 403
    assert LineComment.objects.filter(pk=comment.pk).exists()


def test_the_contractor_deletes_own_comment(client, awaiting, contractor):
    a = cand(awaiting)
    comment = line_comment_add(candidate=a, by=contractor, text="Mine.", **place(a))
    url = reverse("reviews:line_comment_delete", args=[comment.pk])
    response = page_client(client, contractor).post(url)
    assert response.status_code == 200
    assert not LineComment.objects.exists()


def page_data(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="line-comments-data" type="application/json">')
    body = html[start:].split(">", 1)[1].split("</script>", 1)[0]
    return json.loads(body)


def test_the_workspace_carries_the_comments_and_where_they_go(client, awaiting, contractor):
    a = cand(awaiting)
    line_comment_add(candidate=a, by=contractor, text="</script><b>x</b>", **place(a))
    response = page_client(client, contractor).get(reverse("tasks:detail", args=[awaiting.pk]))
    # json_script escapes the markup: the text cannot close the script element.
    assert b"</script><b>x</b>" not in response.content
    data = page_data(response)
    assert [c["text"] for c in data["comments"]] == ["</script><b>x</b>"]
    assert data["files"][f"c{a.pk}-f1"] == {"candidate": a.pk, "path": place(a)["path"]}
    assert set(data["add_urls"]) == {str(c.pk) for c in awaiting.turns.get().candidates.all()}


def test_the_review_page_lets_only_the_claim_holder_comment(client, awaiting, reviewer):
    submit(awaiting)
    url = reverse("reviews:detail", args=[awaiting.pk])
    assert page_data(page_client(client, reviewer).get(url))["add_urls"] == {}
    review_claim(task=awaiting, reviewer=reviewer)
    assert len(page_data(client.get(url))["add_urls"]) == 2


def test_a_bounced_contractor_reads_the_reviewers_comments_read_only(
    client, awaiting, contractor, reviewer
):
    submit(awaiting)
    review_claim(task=awaiting, reviewer=reviewer)
    a = cand(awaiting)
    line_comment_add(candidate=a, by=reviewer, text="Why here?", **place(a))
    decide(awaiting, reviewer=reviewer, decision="BOUNCE", feedback="See the line comment.")
    data = page_data(
        page_client(client, contractor).get(reverse("tasks:detail", args=[awaiting.pk]))
    )
    (comment,) = data["comments"]
    assert (comment["text"], comment["author"], comment["delete_url"]) == (
        "Why here?", "Reviewer, round 1", "",
    )  # fmt: skip
    # Bounced, not yet reopened: nothing to write on until the contractor revises.
    assert data["add_urls"] == {}


# ---------------------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------------------


def api_url(candidate) -> str:
    return reverse("api-line-comments", args=[candidate.pk])


def test_the_api_adds_lists_and_deletes(awaiting, contractor):
    a = cand(awaiting)
    api = api_client_for(contractor)
    response = api.post(api_url(a), {**place(a), "text": "Via the API."}, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["text"] == "Via the API." and "delete_url" not in created
    assert api.get(api_url(a)).json() == [created]
    response = api.delete(reverse("api-line-comment", args=[created["id"]]))
    assert response.status_code == 204
    assert not LineComment.objects.exists()


def test_the_api_hides_other_peoples_tasks(awaiting, contractor, other_contractor):
    a = cand(awaiting)
    comment = line_comment_add(candidate=a, by=contractor, text="Mine.", **place(a))
    api = api_client_for(other_contractor)
    assert api.get(api_url(a)).status_code == 404
    assert api.post(api_url(a), {**place(a), "text": "x"}, format="json").status_code == 404
    assert api.delete(reverse("api-line-comment", args=[comment.pk])).status_code == 404
    assert LineComment.objects.count() == 1


def test_the_api_refuses_a_reviewer_without_the_claim(awaiting, reviewer, admin_user):
    submit(awaiting)
    a = cand(awaiting)
    response = api_client_for(reviewer).post(api_url(a), {**place(a), "text": "x"}, format="json")
    assert response.status_code == 409
    assert "Claim this task" in response.json()["detail"]
    # An admin reads a reviewed task's comments but writes none.
    admin = api_client_for(admin_user)
    assert admin.get(api_url(a)).status_code == 200
    response = admin.post(api_url(a), {**place(a), "text": "x"}, format="json")
    assert response.status_code == 403
    assert not LineComment.objects.exists()


def test_the_api_reports_bad_input_by_field(awaiting, contractor):
    a = cand(awaiting)
    response = api_client_for(contractor).post(
        api_url(a), {**place(a), "line": 0, "text": ""}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()) == {"line", "text"}


def test_the_schema_documents_the_operations(client, contractor):
    schema = page_client(client, contractor).get(reverse("api-schema")).content.decode()
    assert "/api/candidates/{id}/line-comments/" in schema
    assert "/api/line-comments/{id}/" in schema
    assert "LineCommentInput" in schema
