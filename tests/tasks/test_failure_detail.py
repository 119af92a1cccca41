"""A failed candidate keeps its technical cause (HTTP status, exit code, stderr tail) for
admins, scrubbed of secrets; contractors keep reading the plain-words reason only."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse

from tasks import failure_detail, generation_services
from tasks.models import Candidate, Task
from tests.factories import ModelEndpointFactory, ProjectFactory, UserFactory
from tests.fakes.model_servers import status
from tests.tasks.helpers import create_task, vendor_project

SHOWN_TO_ADMINS = "Technical detail"


def _fail_openai_candidate(task: Task) -> Candidate:
    """Run both candidates once; the OpenAI one (slot drawn at random) is the failing one."""
    for candidate in Candidate.objects.filter(turn__task=task):
        generation_services.candidate_generate(
            candidate_id=candidate.pk, job_id=f"job-{candidate.pk}"
        )
    return Candidate.objects.get(turn__task=task, endpoint__provider="openai")


@pytest.fixture
def one_attempt(settings):
    settings.MARLIN_GENERATION_MAX_ATTEMPTS = 1


@pytest.mark.parametrize("code", [500, 429])
def test_a_failing_model_server_leaves_its_http_status_for_admins(
    code, one_attempt, fake_models, ready_repository, contractor
):
    alpha, beta = fake_models
    beta.set_default(status(code, message="upstream overloaded, shard 7"))
    task = create_task(
        contractor=contractor, project=vendor_project(alpha, beta), repository=ready_repository
    )
    candidate = _fail_openai_candidate(task)
    assert candidate.status == Candidate.Status.FAILED
    assert str(code) in candidate.failure_detail
    assert "upstream overloaded, shard 7" in candidate.failure_detail
    # What the contractor reads stays in plain words.
    assert str(code) not in candidate.error
    assert "shard 7" not in candidate.error


def test_the_detail_never_keeps_the_endpoint_key(
    one_attempt, fake_models, ready_repository, contractor, monkeypatch
):
    # A key of no recognisable shape: only knowing the endpoint's own key can catch it.
    monkeypatch.setenv("FAKE_OPENAI_KEY", "plainvalue-0a9f77c2")
    alpha, beta = fake_models
    beta.set_default(status(401, message="Incorrect API key provided: plainvalue-0a9f77c2."))
    task = create_task(
        contractor=contractor, project=vendor_project(alpha, beta), repository=ready_repository
    )
    candidate = _fail_openai_candidate(task)
    assert "401" in candidate.failure_detail
    assert "plainvalue-0a9f77c2" not in candidate.failure_detail
    assert failure_detail.REDACTED in candidate.failure_detail


def test_a_failing_agent_leaves_its_exit_code_and_stderr_tail(
    one_attempt, ready_repository, contractor
):
    agent = ModelEndpointFactory(
        provider="command",
        parameters={
            "command": [
                "/usr/bin/python3",
                "-c",
                "import sys; print('Traceback: KeyError on line 12', file=sys.stderr); sys.exit(3)",
            ],
            "timeout": 60,
        },
    )
    project = ProjectFactory(endpoint_a=agent)
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    failed = Candidate.objects.get(turn__task=task, endpoint=agent)
    generation_services.candidate_generate(candidate_id=failed.pk, job_id="job-agent")
    failed.refresh_from_db()
    assert failed.status == Candidate.Status.FAILED
    assert "exited 3" in failed.failure_detail
    assert "KeyError on line 12" in failed.failure_detail
    assert "KeyError" not in failed.error and "3" not in failed.error


@pytest.fixture
def failed_task(one_attempt, fake_models, ready_repository):
    """A task of a staff superuser (admins may try the work too) and one of a contractor,
    each with its OpenAI candidate failed by an HTTP 500."""
    alpha, beta = fake_models
    beta.set_default(status(500, message="upstream overloaded, shard 7"))
    project = vendor_project(alpha, beta)

    def make(user) -> tuple[Task, Candidate]:
        task = create_task(contractor=user, project=project, repository=ready_repository)
        return task, _fail_openai_candidate(task)

    return make


def test_an_admin_sees_the_detail_on_the_task_page_and_a_contractor_does_not(
    failed_task, client, contractor
):
    boss = UserFactory(username="boss", is_staff=True, is_superuser=True)
    task, candidate = failed_task(boss)
    client.force_login(boss)
    page = client.get(reverse("tasks:detail", args=[task.pk])).content.decode()
    assert SHOWN_TO_ADMINS in page
    assert "500" in page and "shard 7" in page

    task, candidate = failed_task(contractor)
    client.force_login(contractor)
    page = client.get(reverse("tasks:detail", args=[task.pk])).content.decode()
    assert candidate.error in page
    assert SHOWN_TO_ADMINS not in page
    assert "shard 7" not in page and "openai 500" not in page


def _fragment(candidate: Candidate, user) -> str:
    request = RequestFactory().get("/")
    request.user = user
    return render_to_string("tasks/_failure_detail.html", {"candidate": candidate}, request)


def test_the_fragment_shows_the_detail_to_admins_only(failed_task, contractor, admin_user):
    _, candidate = failed_task(contractor)
    shown = _fragment(candidate, admin_user)
    assert SHOWN_TO_ADMINS in shown and "500" in shown and "shard 7" in shown
    # The page is one where work is judged: model names stay masked even for admins.
    assert "openai" not in shown.lower()
    assert _fragment(candidate, contractor).strip() == ""


def test_the_detail_is_escaped(contractor, admin_user, ready_repository, project):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    candidate = Candidate.objects.filter(turn__task=task).first()
    candidate.fail(reason="The model stopped with an error.", detail="<script>alert(1)</script>")
    shown = _fragment(candidate, admin_user)
    assert "<script>" not in shown and "&lt;script&gt;" in shown


def test_the_django_admin_shows_the_detail_read_only(failed_task, client, contractor, admin_user):
    _, candidate = failed_task(contractor)
    client.force_login(admin_user)
    url = reverse("admin:tasks_candidate_change", args=[candidate.pk])
    page = client.get(url).content.decode()
    assert "Failure detail" in page and "shard 7" in page
    client.force_login(contractor)
    assert client.get(url).status_code in (302, 403)
    # Read-only even for a superuser: no input for it, so it cannot be rewritten by hand.
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    page = client.get(url).content.decode()
    assert "shard 7" in page and 'name="failure_detail"' not in page


def test_a_retry_or_success_clears_the_detail(failed_task, contractor):
    _, candidate = failed_task(contractor)
    assert candidate.failure_detail
    candidate.requeue()
    candidate.refresh_from_db()
    assert candidate.failure_detail == ""


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-123", "abc.def-123"),
        ("retrying with Bearer tok_live.abc123", "tok_live.abc123"),
        ('{"x-api-key": "k3y-value-9"}', "k3y-value-9"),
        ("invalid key sk-ant-api03-AbCdEf123456", "sk-ant-api03-AbCdEf123456"),
        ("fetch https://bob:hunter22@git.example.com/x.git", "hunter22"),
        ("token=ghp_abcdefghijklmnopqrstuvwxyz0123", "ghp_abcdefghijklmnopqrstuvwxyz0123"),
        ("password: s3cr3t!", "s3cr3t!"),
    ],
)
def test_scrub_replaces_what_looks_like_a_credential(text, secret):
    scrubbed = failure_detail.scrub(text)
    assert secret not in scrubbed
    assert failure_detail.REDACTED in scrubbed


def test_scrub_keeps_ordinary_text_and_bounds_the_length():
    assert failure_detail.scrub("openai 500: Error code: 500") == "openai 500: Error code: 500"
    long = "start " + "x" * 10_000 + " the last line says why"
    scrubbed = failure_detail.scrub(long)
    assert len(scrubbed) <= failure_detail.MAX_CHARS
    assert scrubbed.startswith("start ") and scrubbed.endswith("the last line says why")
    assert failure_detail.scrub("a\x1b[31mred\x00") == "a[31mred"
