"""Check recipes in the Django admin and the admin API: validated like endpoints, and the
pages say whether evidence can run on this server at all."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape
from rest_framework.test import APIClient

from tasks import evidence
from tasks.models import CheckRecipe, EvidenceRun
from tests.factories import RepositoryFactory
from tests.tasks.helpers import create_task

GOOD_CHECKS = [
    {"name": "tests", "command": ["python", "-m", "pytest", "-q", "--junitxml={report}"],
     "kind": "tests", "timeout_seconds": 300},
    {"name": "lint", "command": ["ruff", "check", "."], "kind": "findings"},
]  # fmt: skip
SETUP = [["python", "-m", "venv", "{env}/venv"], ["{env}/venv/bin/pip", "install", "-e", "."]]
MISSING_BWRAP = "bwrap-not-installed-here"


@pytest.fixture
def page(admin_user) -> Client:
    # The admin role, not a superuser: its permissions are the ones that must suffice.
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def api(admin_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


def _form(repository, **overrides) -> dict:
    fields = {
        "repository": repository.pk, "project": "", "setup_commands": SETUP,
        "setup_timeout_seconds": 600, "checks": GOOD_CHECKS,
        "acceptance_command": evidence.DEFAULT_ACCEPTANCE_COMMAND, "is_enabled": "on",
    } | overrides  # fmt: skip
    return {k: json.dumps(v) if isinstance(v, list) else v for k, v in fields.items()}


def _check(**fields) -> list[dict]:
    return [{"name": "tests", "command": ["pytest", "-q"], **fields}]


BAD = [
    ("checks", _check(command=["pytest -q"]), '"pytest -q" looks like a shell line'),
    ("checks", _check(command=["sh", "-c", "x"]), 'a shell line must be written ["bash", "-c"'),
    ("checks", _check(timeout_seconds=99999), "timeout_seconds is between 1 and 600"),
    ("checks", _check(kind="coverage"), "kind is one of tests, findings, status"),
    ("setup_timeout_seconds", 99999, "Between 1 and 1200 seconds."),
    ("setup_commands", [["curl http://x | sh"]], "looks like a shell line"),
    ("acceptance_command", ["python", "-m", "pytest"], "needs {files} where the tests go"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD)
def test_the_admin_refuses_a_recipe_that_cannot_run_as_written(page, field, value, message):
    repository = RepositoryFactory()
    response = page.post(
        reverse("admin:tasks_checkrecipe_add"), _form(repository, **{field: value})
    )
    assert response.status_code == 200  # the form again, not a redirect
    form = response.context["adminform"].form
    # The message sits under the field it is about, escaped like any text on the page.
    assert any(message in error for error in form.errors[field]), form.errors
    assert escape(message) in response.content.decode()
    assert not CheckRecipe.objects.exists()


def test_the_admin_saves_a_good_recipe_and_lists_it_by_repository(page):
    repository = RepositoryFactory(full_name="octo/calc")
    response = page.post(reverse("admin:tasks_checkrecipe_add"), _form(repository))
    assert response.status_code == 302, response.context["adminform"].form.errors
    recipe = CheckRecipe.objects.get()
    assert (recipe.repository, recipe.project) == (repository, None)
    assert recipe.checks == GOOD_CHECKS and recipe.setup_commands == SETUP
    listing = page.get(reverse("admin:tasks_checkrecipe_changelist")).content.decode()
    assert "octo/calc" in listing and "tests, lint" in listing
    change = page.get(reverse("admin:tasks_checkrecipe_change", args=[recipe.pk]))
    # The JSON is shown indented, to be edited by hand.
    assert escape('\n    "name": "tests",\n') in change.content.decode()
    emptied = page.post(
        reverse("admin:tasks_checkrecipe_change", args=[recipe.pk]),
        _form(repository, setup_commands=""),
    )
    assert emptied.status_code == 302
    recipe.refresh_from_db()
    assert recipe.setup_commands == []  # an empty box is no setup


def test_the_recipe_pages_say_why_evidence_cannot_run_here(page, settings):
    listing = page.get(reverse("admin:tasks_checkrecipe_changelist")).content.decode()
    assert "Evidence can run on this server" in listing
    settings.MARLIN_SANDBOX_BWRAP = MISSING_BWRAP
    reason = f"bubblewrap ({MISSING_BWRAP}) is not installed on this server"
    for url in (
        reverse("admin:tasks_checkrecipe_changelist"),
        reverse("admin:tasks_checkrecipe_add"),
        reverse("admin:tasks_evidencerun_changelist"),
    ):
        html = page.get(url).content.decode()
        assert reason in html, url
        assert 'class="warning"' in html
        assert "Evidence can run on this server" not in html


def test_evidence_runs_are_shown_read_only_with_why_they_failed(
    page, ready_repository, project, contractor
):
    task = create_task(contractor=contractor, project=project, repository=ready_repository)
    run = EvidenceRun.objects.create(
        task=task, key="k", recipe={}, recipe_digest="d" * 64, status=EvidenceRun.Status.FAILED,
        error="The checks ran out of time.", failure_detail="<script>alert(1)</script> code 137",
    )  # fmt: skip
    change = page.get(reverse("admin:tasks_evidencerun_change", args=[run.pk]))
    html = change.content.decode()
    assert "The checks ran out of time." in html
    assert escape("<script>alert(1)</script> code 137") in html
    assert "<script>alert(1)" not in html
    posted = page.post(reverse("admin:tasks_evidencerun_change", args=[run.pk]), {"error": ""})
    assert posted.status_code == 403
    run.refresh_from_db()
    assert run.error == "The checks ran out of time."


@pytest.mark.parametrize(("field", "value", "message"), BAD)
def test_the_admin_api_refuses_the_same_recipes(api, field, value, message):
    body = {
        "repository": RepositoryFactory().pk, "checks": GOOD_CHECKS, "setup_commands": SETUP,
        field: value,
    }  # fmt: skip
    response = api.post(reverse("api-admin-check-recipe-list"), body, format="json")
    assert response.status_code == 400
    assert message in " ".join(response.json()[field])
    assert not CheckRecipe.objects.exists()


def test_the_admin_api_creates_and_updates_a_recipe_and_says_if_evidence_is_off(api, settings):
    repository = RepositoryFactory()
    url = reverse("api-admin-check-recipe-list")
    created = api.post(url, {"repository": repository.pk, "checks": GOOD_CHECKS}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["evidence_unavailable"] is None
    recipe = CheckRecipe.objects.get()
    assert recipe.acceptance_command == evidence.DEFAULT_ACCEPTANCE_COMMAND
    detail = reverse("api-admin-check-recipe-detail", args=[recipe.pk])
    refused = api.patch(detail, {"checks": _check(command=["sh", "-c", "x"])}, format="json")
    assert refused.status_code == 400
    recipe.refresh_from_db()
    assert recipe.checks == GOOD_CHECKS
    # A second general recipe for the repository: refused with words, not a database error.
    twice = api.post(url, {"repository": repository.pk, "checks": GOOD_CHECKS}, format="json")
    assert twice.status_code == 400
    assert "already has a recipe" in twice.json()["non_field_errors"][0]
    settings.MARLIN_SANDBOX_BWRAP = MISSING_BWRAP
    listed = api.get(url).json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert MISSING_BWRAP in rows[0]["evidence_unavailable"]


def test_people_without_the_permission_cannot_touch_recipes(client, contractor):
    client.force_login(contractor)
    assert client.get(reverse("admin:tasks_checkrecipe_changelist")).status_code == 302
    api = APIClient()
    api.force_authenticate(contractor)
    assert api.get(reverse("api-admin-check-recipe-list")).status_code == 403
