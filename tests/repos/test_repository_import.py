from __future__ import annotations

import json

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from marlin.exceptions import ApplicationError
from repos.catalogue_imports import catalogue_import_execute, catalogue_import_start
from repos.models import CatalogueImport, Repository
from repos.services import repository_import


def gh(full_name: str, **extra) -> dict:
    """A repository object as the GitHub REST API returns it (the fields we read)."""
    return {
        "full_name": full_name,
        "html_url": f"https://github.com/{full_name}",
        "clone_url": f"https://github.com/{full_name}.git",
        "default_branch": "main",
        "language": "Python",
        "stargazers_count": 1200,
        "description": "Web framework",
        "license": {"key": "bsd-3-clause", "spdx_id": "BSD-3-Clause"},
        "topics": ["web", "wsgi"],
        "archived": False,
        "size": 9000,
        "pushed_at": "2026-10-01T12:00:00Z",
        **extra,
    }


def test_it_imports_a_json_array_of_github_objects(db):
    report = repository_import(
        content=json.dumps([gh("pallets/flask"), gh("psf/requests", language="Python")]).encode(),
        filename="repos.json",
    )
    assert (report.created, report.updated, report.rejected) == (2, 0, [])
    flask = Repository.objects.get(full_name="pallets/flask")
    assert flask.clone_url == "https://github.com/pallets/flask.git"
    assert flask.license == "BSD-3-Clause" and flask.topics == ["web", "wsgi"]
    assert flask.stars == 1200 and flask.size_kb == 9000 and flask.pushed_at.year == 2026
    assert "web framework" in flask.search_text and flask.topics_text == " web wsgi "


def test_broken_rows_are_reported_by_line_and_good_rows_still_import(db):
    lines = [
        json.dumps(gh("good/one")),
        "{not json",
        json.dumps(gh("bad name/x")),
        json.dumps(gh("evil/x", clone_url="ext::sh -c id")),
        json.dumps(gh("evil/y", clone_url="https://evil.example/evil/y.git")),
        json.dumps(gh("evil/z", stargazers_count=-5)),
        json.dumps(gh("evil/t", topics=["<script>"])),
        json.dumps(gh("evil/u", clone_url="https://github.com/other/repo.git")),
        json.dumps({"description": "no name"}),
        "",
        json.dumps(gh("good/two")),
    ]
    report = repository_import(content="\n".join(lines).encode(), filename="repos.jsonl")
    assert report.created == 2
    assert [line for line, _ in report.rejected] == [2, 3, 4, 5, 6, 7, 8, 9]
    reasons = dict(report.rejected)
    assert "not valid JSON" in reasons[2]
    assert "is not OWNER/NAME" in reasons[3]
    assert "clone_url refused" in reasons[4] and "clone_url refused" in reasons[5]
    assert "stargazers_count" in reasons[6]
    assert "topic" in reasons[7]
    assert "does not match full_name" in reasons[8]
    assert "full_name is missing" in reasons[9]
    assert set(Repository.objects.values_list("full_name", flat=True)) == {"good/one", "good/two"}


def test_a_csv_with_only_full_name_imports(db):
    content = (
        b"full_name,language,stargazers_count,topics\npallets/flask,Python,10,web wsgi\nbad,,,\n"
    )
    report = repository_import(content=content, filename="repos.csv")
    assert report.created == 1 and report.rejected == [(3, "full_name 'bad' is not OWNER/NAME")]
    flask = Repository.objects.get()
    assert flask.clone_url == "https://github.com/pallets/flask.git" and flask.topics == [
        "web",
        "wsgi",
    ]


def test_reimport_updates_catalogue_data_and_keeps_admin_choices(db):
    repository_import(content=json.dumps([gh("pallets/flask")]).encode(), filename="a.json")
    Repository.objects.filter(full_name="pallets/flask").update(
        is_enabled=False, max_open_tasks=3, task_count=7
    )
    report = repository_import(
        content=json.dumps([gh("pallets/flask", stargazers_count=99)]).encode(), filename="a.json"
    )
    assert (report.created, report.updated) == (0, 1)
    flask = Repository.objects.get()
    assert flask.stars == 99
    assert (flask.is_enabled, flask.max_open_tasks, flask.task_count) == (False, 3, 7)


@pytest.mark.parametrize(
    ("content", "filename", "message"),
    [
        (b"[{broken", "x.json", "not valid JSON"),
        (b"\xff\xfe\x00", "x.json", "not UTF-8"),
        (b"name,stars\nx,1\n", "x.csv", "full_name column"),
        (b"\n\n", "x.jsonl", "holds no repositories"),
    ],
)
def test_an_unreadable_upload_is_refused_whole(db, content, filename, message):
    with pytest.raises(ApplicationError, match=message):
        catalogue_import_start(
            by=None, upload=ContentFile(content, name=filename), filename=filename
        )
    assert not Repository.objects.exists() and not CatalogueImport.objects.exists()


@pytest.mark.parametrize(
    ("content", "filename", "message"),
    [
        (b"[{broken", "x.json", "not valid JSON"),
        (b"name,stars\nx,1\n", "x.csv", "full_name column"),
    ],
)
def test_an_unreadable_file_is_refused_whole(db, content, filename, message):
    with pytest.raises(ApplicationError, match=message):
        repository_import(content=content, filename=filename)
    assert not Repository.objects.exists()


def test_the_command_reports_rejections_and_counts(db, tmp_path, capsys):
    path = tmp_path / "repos.jsonl"
    path.write_text(json.dumps(gh("a/b")) + "\n" + json.dumps(gh("c")) + "\n")
    call_command("import_repositories", str(path))
    out = capsys.readouterr()
    assert "Imported 1 repositories (1 new, 0 updated); rejected 1 rows." in out.out
    assert "line 2: full_name 'c' is not OWNER/NAME" in out.err
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_repositories", str(tmp_path / "missing.json"))


def test_the_api_queues_an_import_for_admins_only(client, admin_user, contractor):
    upload = json.dumps([gh("pallets/flask"), {"full_name": "x"}]).encode()
    client.force_login(contractor)
    response = client.post(
        reverse("api-repos-import"), {"file": SimpleUploadedFile("r.json", upload)}
    )
    assert response.status_code == 403 and not CatalogueImport.objects.exists()
    client.force_login(admin_user)
    response = client.post(
        reverse("api-repos-import"), {"file": SimpleUploadedFile("r.json", upload)}
    )
    assert response.status_code == 202
    job = CatalogueImport.objects.get()
    assert response.json()["url"] == reverse("api-repos-import-job", args=[job.pk])
    assert (job.status, job.requested_by, job.size_bytes) == ("QUEUED", admin_user, len(upload))
    # The worker's part, run here: see test_catalogue_import_job.py for a real worker.
    catalogue_import_execute(import_id=job.pk)
    data = client.get(response.json()["url"]).json()
    assert (data["status"], data["rows_created"], data["rows_updated"]) == ("SUCCEEDED", 1, 0)
    assert data["rejections"] == [{"line": 2, "reason": "full_name 'x' is not OWNER/NAME"}]
    client.force_login(contractor)
    assert client.get(response.json()["url"]).status_code == 403
    client.force_login(admin_user)
    bad = client.post(reverse("api-repos-import"), {"file": SimpleUploadedFile("r.json", b"[")})
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["detail"]
    assert client.post(reverse("api-repos-import"), {}).status_code == 400
    assert CatalogueImport.objects.count() == 1


def test_the_admin_upload_queues_an_import_and_shows_its_rejections(client, admin_user):
    client.force_login(admin_user)
    upload = SimpleUploadedFile("r.jsonl", (json.dumps(gh("a/b")) + "\n{}\n").encode())
    response = client.post(reverse("admin:repos_repository_import"), {"file": upload})
    job = CatalogueImport.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:repos_catalogueimport_change", args=[job.pk])
    running = client.get(response.url).content.decode()
    assert 'http-equiv="refresh"' in running  # the page follows the import by itself
    catalogue_import_execute(import_id=job.pk)
    page = client.get(response.url).content.decode()
    assert "1 imported (1 new, 0 updated), 1 rejected" in page and "full_name is missing" in page
    assert 'http-equiv="refresh"' not in page  # finished: no more reloads
    assert Repository.objects.filter(full_name="a/b").exists()


def test_admins_withdraw_and_offer_repositories(client, admin_user):
    repository_import(content=json.dumps([gh("a/b")]).encode(), filename="r.json")
    client.force_login(admin_user)
    repo = Repository.objects.get()
    client.post(
        reverse("admin:repos_repository_changelist"),
        {"action": "disable", "_selected_action": [repo.pk]},
    )
    repo.refresh_from_db()
    assert repo.is_enabled is False
