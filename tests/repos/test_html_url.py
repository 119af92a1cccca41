"""A repository's html_url is a link: only http(s) addresses are taken in, and only they go out.

A `javascript:` address would run in Marlin's origin the moment someone clicks it.
"""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from repos.models import CatalogueImport, Repository
from repos.services import repository_import
from tests.factories import RepositoryFactory
from tests.repos.test_repository_import import gh

REASON = "html_url must be an http:// or https:// address without a user name"
BAD_URLS = [
    "javascript:alert(document.cookie)",
    "JavaScript:alert(1)",
    "  javascript:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "ftp://github.com/pallets/flask",
    "//github.com/pallets/flask",
    "https://user:secret@github.com/pallets/flask",
    "https://",
    "https://github.com/" + "x" * 300,
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_an_import_row_with_a_non_web_html_url_is_refused(db, url):
    rows = [gh("pallets/flask", html_url=url), gh("psf/requests")]
    report = repository_import(content=json.dumps(rows).encode(), filename="r.json")
    assert report.rejected == [(1, REASON)]
    # The good row still imports; the bad one is written not at all.
    assert list(Repository.objects.values_list("full_name", flat=True)) == ["psf/requests"]


@pytest.mark.parametrize(
    "url", ["https://github.com/pallets/flask", "http://127.0.0.1:8765/demo/calc", ""]
)
def test_web_addresses_and_a_missing_one_import(db, url):
    report = repository_import(
        content=json.dumps([gh("pallets/flask", html_url=url)]).encode(), filename="r.json"
    )
    assert report.rejected == []
    expected = url or "https://github.com/pallets/flask"
    assert Repository.objects.get().html_url == expected


def test_a_csv_row_with_a_javascript_html_url_is_refused(db):
    content = b"full_name,html_url\npallets/flask,javascript:alert(1)\n"
    report = repository_import(content=content, filename="r.csv")
    assert report.rejected == [(2, REASON)]
    assert not Repository.objects.exists()


def test_the_import_api_reports_the_row(client, admin_user):
    upload = json.dumps([gh("pallets/flask", html_url="javascript:alert(1)")]).encode()
    client.force_login(admin_user)
    response = client.post(
        reverse("api-repos-import"), {"file": SimpleUploadedFile("r.json", upload)}
    )
    # Its only row is bad: refused while the uploader waits, nothing stored or queued.
    assert response.status_code == 400
    assert response.json() == {
        "detail": f"No row of r.json can be imported: all 1 rows were rejected (line 1: {REASON}).",
        "rejected": [{"line": 1, "reason": REASON}],
    }
    assert not Repository.objects.exists() and not CatalogueImport.objects.exists()


def test_the_admin_upload_lists_the_row(client, admin_user):
    client.force_login(admin_user)
    upload = SimpleUploadedFile(
        "r.jsonl", (json.dumps(gh("a/b", html_url="javascript:alert(1)")) + "\n").encode()
    )
    response = client.post(reverse("admin:repos_repository_import"), {"file": upload})
    assert response.status_code == 400
    page = response.content.decode()
    assert "all 1 rows were rejected" in page and REASON in page
    assert not Repository.objects.exists() and not CatalogueImport.objects.exists()


def test_a_reimport_cannot_turn_a_good_link_bad(db):
    repository_import(content=json.dumps([gh("a/b")]).encode(), filename="r.json")
    report = repository_import(
        content=json.dumps([gh("a/b", html_url="javascript:alert(1)")]).encode(),
        filename="r.json",
    )
    assert report.rejected == [(1, REASON)]
    assert Repository.objects.get().html_url == "https://github.com/a/b"


@pytest.mark.parametrize("url", BAD_URLS[:-1])
def test_the_model_refuses_a_non_web_html_url(db, url):
    repository = RepositoryFactory.build(full_name="a/b", html_url=url)
    with pytest.raises(ValidationError) as caught:
        repository.full_clean()
    assert "html_url" in caught.value.message_dict


@pytest.mark.parametrize("url", BAD_URLS[:-1])
def test_a_bad_stored_html_url_is_never_returned(client, contractor, url):
    # Stored before the check existed (update() skips validation, like an old import did).
    repository = RepositoryFactory(full_name="a/b")
    Repository.objects.filter(pk=repository.pk).update(html_url=url)
    client.force_login(contractor)
    detail = client.get(reverse("api-repository", args=[repository.pk]))
    listing = client.get(reverse("api-repositories"))
    assert detail.json()["html_url"] == ""
    assert [r["html_url"] for r in listing.json()["results"]] == [""]
    for response in (detail, listing):
        assert url.strip().encode() not in response.content


def test_a_good_stored_html_url_is_returned(client, contractor):
    repository = RepositoryFactory(full_name="a/b")
    client.force_login(contractor)
    detail = client.get(reverse("api-repository", args=[repository.pk]))
    assert detail.json()["html_url"] == "https://github.com/a/b"
