"""The new-task form as DESIGN.md step 2 has it: the only project chosen already, its
guidelines on screen, and optionally the files that matter, which the models are told about,
the task page lists and the native export keeps."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.template.loader import render_to_string
from django.urls import reverse

from marlin.exceptions import ApplicationError
from tasks import prompting, services
from tasks.focus_files import MAX_FOCUS_FILES
from tasks.models import Candidate, Task
from tests.api_clients import api_client_for
from tests.factories import ProjectFactory
from tests.tasks.helpers import decide, generate_all, submit

GUIDELINES = "Keep changes **small**.\n\n# Scope\n\n<script>alert(1)</script>"


def _form(project, repository, **overrides) -> dict:
    data = {
        "project": project.pk,
        "repository": repository.pk,
        "ref": "",
        "title": "Guard division",
        "kind": Task.Kind.BUG_FIX,
        "prompt": "Make calc.ops.div safe for zero.",
    }
    data.update(overrides)
    return data


def _create(contractor, project, repository, focus_files) -> Task:
    return services.task_create(
        contractor=contractor, project=project, repository=repository, ref="",
        title="Guard division", kind=Task.Kind.BUG_FIX, prompt="Make div safe.",
        focus_files=focus_files,
    )  # fmt: skip


# --- the project: preselected, its guidelines beside the form -------------------------------


def _selected(page: str, project) -> bool:
    return f'<option value="{project.pk}" selected>' in page


def test_the_only_active_project_is_preselected(client, contractor):
    only = ProjectFactory(name="Only one")
    ProjectFactory(name="Closed", is_active=False)
    client.force_login(contractor)
    page = client.get(reverse("tasks:create")).content.decode()
    assert _selected(page, only)


def test_with_two_active_projects_none_is_chosen_for_the_contractor(client, contractor):
    first, second = ProjectFactory(), ProjectFactory()
    client.force_login(contractor)
    page = client.get(reverse("tasks:create")).content.decode()
    assert not _selected(page, first) and not _selected(page, second)
    assert "Choose a project to see its guidelines." in page


def test_the_preselected_projects_guidelines_are_on_screen_sanitised(client, contractor):
    ProjectFactory(name="Only one", guidelines=GUIDELINES)
    client.force_login(contractor)
    page = client.get(reverse("tasks:create")).content.decode()
    guidelines = page[page.index('id="project-guidelines"') :]
    assert "Guidelines of Only one" in guidelines
    assert "<strong>small</strong>" in guidelines
    # Markdown headings sit below the page's own h1; the guidelines' HTML is text.
    assert "<h1>Scope</h1>" not in guidelines and "Scope</h" in guidelines
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in guidelines


def test_changing_the_project_loads_its_guidelines(client, contractor):
    ProjectFactory(guidelines="First project's rules.")
    second = ProjectFactory(name="Second", guidelines="Only *tests* here.")
    closed = ProjectFactory(name="Closed", guidelines="Old rules.", is_active=False)
    client.force_login(contractor)
    page = client.get(reverse("tasks:create")).content.decode()
    url = reverse("tasks:project_guidelines")
    assert f'hx-get="{url}"' in page and 'hx-target="#project-guidelines"' in page
    fragment = client.get(url, {"project": second.pk}).content.decode()
    assert 'id="project-guidelines"' in fragment
    assert "Guidelines of Second" in fragment and "<em>tests</em>" in fragment
    # Only what the form offers: a closed project's guidelines are not served.
    assert "Old rules." not in client.get(url, {"project": closed.pk}).content.decode()
    assert "Choose a project" in client.get(url, {"project": "nope"}).content.decode()


def test_the_guidelines_endpoint_is_for_contractors(client, reviewer):
    project = ProjectFactory()
    client.force_login(reviewer)
    response = client.get(reverse("tasks:project_guidelines"), {"project": project.pk})
    assert response.status_code == 403


# --- the files that matter ------------------------------------------------------------------


def test_the_form_takes_files_one_per_line_without_blanks_or_duplicates(
    client, ready_repository, project, contractor
):
    client.force_login(contractor)
    typed = "calc/ops.py\r\n\r\n  README.md  \ncalc/ops.py\ncalc/\n"
    response = client.post(
        reverse("tasks:create"), _form(project, ready_repository, focus_files=typed)
    )
    task = Task.objects.get()
    assert response.status_code == 302
    assert task.focus_files == ["calc/ops.py", "README.md", "calc"]


def test_without_files_the_task_has_none(client, ready_repository, project, contractor):
    client.force_login(contractor)
    client.post(reverse("tasks:create"), _form(project, ready_repository))
    assert Task.objects.get().focus_files == []


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/etc/passwd", "no leading"),
        ("../secrets.txt", '".."'),
        ("calc/../../x.py", '".."'),
        ("calc//ops.py", "empty"),
        ("calc\\ops.py", "separate folders"),
        ("calc/o\x00ps.py", "control character"),
        ("calc/o\x1bps.py", "control character"),
        ("a/" * 250 + "x.py", "longer than 500"),
        ("calc/nope.py", "not in the repository at the pinned commit"),
    ],
)
def test_a_bad_path_is_refused_by_name_and_nothing_is_stored(
    path, says, ready_repository, project, contractor
):
    with pytest.raises(ApplicationError) as refused:
        _create(contractor, project, ready_repository, ["README.md", path])
    assert says in refused.value.message
    assert repr(path)[:40] in refused.value.message
    assert not Task.objects.exists() and not Candidate.objects.exists()


def test_at_most_fifty_files(ready_repository, project, contractor):
    paths = [f"calc/f{n}.py" for n in range(MAX_FOCUS_FILES + 1)]
    with pytest.raises(ApplicationError, match=f"at most {MAX_FOCUS_FILES}"):
        _create(contractor, project, ready_repository, paths)
    assert not Task.objects.exists()


def test_the_form_shows_a_bad_path_next_to_the_field(client, ready_repository, project, contractor):
    client.force_login(contractor)
    response = client.post(
        reverse("tasks:create"), _form(project, ready_repository, focus_files="calc/nope.py")
    )
    page = response.content.decode()
    assert response.status_code == 200
    field = page[page.index('name="focus_files"') :]
    assert "&#x27;calc/nope.py&#x27; is not in the repository" in field
    # What was typed survives, so it can be corrected.
    assert "calc/nope.py</textarea>" in page
    assert not Task.objects.exists()


def test_the_api_takes_a_list_and_refuses_a_bad_one(ready_repository, project, contractor):
    api = api_client_for(contractor)
    url = "/api/tasks/"
    created = api.post(
        url,
        {**_form(project, ready_repository), "focus_files": ["calc/ops.py", "calc/ops.py"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["focus_files"] == ["calc/ops.py"]
    assert Task.objects.get().focus_files == ["calc/ops.py"]

    bad = api.post(
        url, {**_form(project, ready_repository), "focus_files": ["../x"]}, format="json"
    )
    assert bad.status_code == 400 and "'../x'" in bad.content.decode()
    not_a_list = api.post(
        url, {**_form(project, ready_repository), "focus_files": 5}, format="json"
    )
    assert not_a_list.status_code == 400
    assert Task.objects.count() == 1


def test_the_task_page_fragment_lists_the_files_escaped(ready_repository, project, contractor):
    task = _create(contractor, project, ready_repository, ["calc/ops.py", "README.md"])
    html = render_to_string("tasks/_focus_files.html", {"task": task})
    assert "Files that matter" in html
    assert "<code>calc/ops.py</code>" in html and "<code>README.md</code>" in html
    browse = reverse("repos:browse", args=[ready_repository.pk, task.commit_sha, "calc/ops.py"])
    assert f'href="{browse}"' in html
    Task.objects.filter(pk=task.pk).update(focus_files=["<b>x</b>.py"])
    task.refresh_from_db()
    assert "<b>x</b>" not in render_to_string("tasks/_focus_files.html", {"task": task})
    without = _create(contractor, project, ready_repository, [])
    assert render_to_string("tasks/_focus_files.html", {"task": without}).strip() == ""


def test_the_models_are_told_the_files_and_get_them_first(
    ready_repository, project, contractor, settings
):
    # Room for one file only: the named one wins over the README the ranking prefers.
    settings.MARLIN_PROMPT_CONTEXT_BYTES = 2_000
    task = _create(contractor, project, ready_repository, ["tests/test_ops.py"])
    candidate = Candidate.objects.filter(turn__task=task).first()
    request = prompting.build_request(candidate)
    assert "Files that matter: tests/test_ops.py" in request.system
    assert next(iter(request.files)) == "tests/test_ops.py"
    plain = _create(contractor, project, ready_repository, [])
    other = Candidate.objects.filter(turn__task=plain).first()
    assert "Files that matter" not in prompting.build_request(other).system


def test_the_native_export_keeps_the_files(
    ready_repository, project, contractor, reviewer, tmp_path
):
    task = _create(contractor, project, ready_repository, ["calc/ops.py", "README.md"])
    decide(submit(generate_all(task)), reviewer=reviewer)
    out = tmp_path / "native.jsonl"
    call_command("export_dataset", "--format", "native", "-o", str(out))
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["focus_files"] == ["calc/ops.py", "README.md"]
    # The pairwise formats stay as they were.
    call_command("export_dataset", "--format", "trl", "-o", str(out))
    assert "focus_files" not in json.loads(out.read_text().splitlines()[0])
