"""The contractor's acceptance tests: given on the new-task form and through the API, checked
before anything is stored, kept on the task, shown to the contractor and the reviewer, and
never sent to the models."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from tasks.models import SentPrompt, Task, Turn
from tests.api_clients import api_client_for
from tests.tasks.helpers import generate_all, submit, vendor_project

MARKER = "acceptance-marker-5190"
GOOD = {
    "path": "tests/test_accept.py",
    "content": f"from calc.ops import div\n\n\ndef test_zero():  # {MARKER}\n"
    "    assert div(1, 0) is None\n",
}
BIG = "x = 1\n" * 20_000  # 120 KB: over the 100 KB a file may hold


def _form(project, repository, rows=(), **overrides) -> dict:
    data = {
        "project": project.pk,
        "repository": repository.pk,
        "ref": "",
        "title": "Guard division",
        "kind": Task.Kind.BUG_FIX,
        "prompt": "Make calc.ops.div safe for zero.",
    }
    for number, row in enumerate(rows):
        data[f"acceptance_tests-{number}-path"] = row["path"]
        data[f"acceptance_tests-{number}-content"] = row["content"]
    data.update(overrides)
    return data


BAD = [
    pytest.param(
        [{"path": "../x.py", "content": "x = 1"}], "not a plain relative path", id="dotdot"
    ),
    pytest.param([{"path": "/etc/x", "content": "x = 1"}], "not a plain relative path", id="abs"),
    pytest.param(
        [{"path": ".git/hooks/x", "content": "x = 1"}], "not a plain relative path", id="git"
    ),
    pytest.param(
        [{"path": f"tests/test_{n}.py", "content": "x = 1"} for n in range(11)],
        "At most 10 acceptance test files",
        id="too-many",
    ),
    pytest.param([{"path": "tests/test_big.py", "content": BIG}], "is over 100 KB", id="too-big"),
    pytest.param([{"path": "", "content": "x = 1"}], "not a plain relative path", id="no-path"),
]


def test_the_form_shows_labelled_rows_for_acceptance_tests(client, contractor, project):
    client.force_login(contractor)
    page = client.get(reverse("tasks:create")).content.decode()
    assert "Acceptance tests — hidden from the models" in page
    for number in range(3):
        assert f'name="acceptance_tests-{number}-path"' in page
        assert f'name="acceptance_tests-{number}-content"' in page


@pytest.mark.parametrize(("rows", "message"), BAD)
def test_the_form_refuses_bad_acceptance_tests_and_stores_nothing(
    client, contractor, project, ready_repository, rows, message
):
    client.force_login(contractor)
    response = client.post(reverse("tasks:create"), _form(project, ready_repository, rows))
    assert response.status_code == 200  # the form again, with the reason
    assert message in response.content.decode()
    assert not Task.objects.exists() and not Turn.objects.exists()


def test_the_form_keeps_what_was_typed_after_an_error(
    client, contractor, project, ready_repository
):
    client.force_login(contractor)
    rows = [GOOD, {"path": "../evil.py", "content": "y = 2"}]
    page = client.post(reverse("tasks:create"), _form(project, ready_repository, rows))
    html = page.content.decode()
    # Nothing typed is lost: both rows come back (escaped) for the contractor to fix.
    assert 'value="tests/test_accept.py"' in html and 'value="../evil.py"' in html
    assert "def test_zero():" in html


def test_the_form_stores_good_acceptance_tests_with_plain_line_ends(
    client, contractor, project, ready_repository
):
    client.force_login(contractor)
    crlf = {"path": " tests/test_accept.py ", "content": GOOD["content"].replace("\n", "\r\n")}
    # An empty spare row is not a test.
    data = _form(project, ready_repository, [crlf, {"path": "", "content": "  "}])
    response = client.post(reverse("tasks:create"), data)
    task = Task.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/tasks/{task.pk}/")
    assert task.acceptance_tests == [GOOD]


def test_a_task_without_acceptance_tests_has_none(client, contractor, project, ready_repository):
    client.force_login(contractor)
    client.post(reverse("tasks:create"), _form(project, ready_repository))
    assert Task.objects.get().acceptance_tests == []


@pytest.mark.parametrize(("rows", "message"), BAD)
def test_the_api_refuses_bad_acceptance_tests_with_400_and_stores_nothing(
    contractor, project, ready_repository, rows, message
):
    body = {**_form(project, ready_repository), "acceptance_tests": rows}
    response = api_client_for(contractor).post(reverse("api-tasks"), body, format="json")
    assert response.status_code == 400
    assert message in " ".join(response.json()["acceptance_tests"])
    assert not Task.objects.exists() and not Turn.objects.exists()


@pytest.mark.parametrize(
    "value",
    ["tests/test_x.py", {"path": "tests/test_x.py", "content": "x"}, [{"path": "a.py"}]],
)
def test_the_api_refuses_acceptance_tests_of_the_wrong_shape(
    contractor, project, ready_repository, value
):
    body = {**_form(project, ready_repository), "acceptance_tests": value}
    response = api_client_for(contractor).post(reverse("api-tasks"), body, format="json")
    assert response.status_code == 400, response.content
    assert "acceptance_tests" in response.json()
    assert not Task.objects.exists()


def test_the_api_stores_good_acceptance_tests_and_shows_them_to_their_contractor(
    contractor, project, ready_repository
):
    client = api_client_for(contractor)
    body = {**_form(project, ready_repository), "acceptance_tests": [GOOD]}
    response = client.post(reverse("api-tasks"), body, format="json")
    assert response.status_code == 201, response.content
    task = Task.objects.get(pk=response.json()["id"])
    assert task.acceptance_tests == [GOOD]
    shown = client.get(reverse("api-task", args=[task.pk])).json()
    assert shown["acceptance_tests"] == [GOOD]


def test_acceptance_tests_never_reach_the_models(client, contractor, fake_models, ready_repository):
    alpha, beta = fake_models
    project = vendor_project(alpha, beta)
    client.force_login(contractor)
    response = client.post(reverse("tasks:create"), _form(project, ready_repository, [GOOD]))
    assert response.status_code == 302
    task = generate_all(Task.objects.get())
    assert task.status == Task.Status.AWAITING_PREFERENCE
    sent = json.dumps(list(SentPrompt.objects.values_list("messages", flat=True)))
    wire = json.dumps([r.body for server in fake_models for r in server.requests])
    # Both models were asked, with the task's prompt...
    assert alpha.requests and beta.requests
    assert "Make calc.ops.div safe for zero." in sent and "Make calc.ops.div safe" in wire
    # ...and neither the stored prompt nor the bytes sent hold the tests, their path or text.
    for text in (MARKER, "def test_zero", "tests/test_accept.py"):
        assert text not in sent
        assert text not in wire


def test_the_contractor_and_the_reviewer_see_the_acceptance_tests_escaped(
    client, contractor, project, ready_repository, reviewer
):
    hostile = {"path": "tests/test_x.py", "content": "# <script>alert(1)</script>\nx = 1\n"}
    client.force_login(contractor)
    client.post(reverse("tasks:create"), _form(project, ready_repository, [GOOD, hostile]))
    task = generate_all(Task.objects.get())
    page = client.get(reverse("tasks:detail", args=[task.pk])).content.decode()
    assert 'id="acceptance-tests"' in page and "tests/test_x.py" in page
    assert "# &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page
    submit(task)
    client.force_login(reviewer)
    page = client.get(reverse("reviews:detail", args=[task.pk])).content.decode()
    assert "Acceptance tests — hidden from the models" in page
    assert "# &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page
