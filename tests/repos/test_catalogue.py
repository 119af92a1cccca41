from __future__ import annotations

import pytest
from django.urls import reverse

from repos.models import Repository
from repos.selectors import CatalogueFilter, repository_list
from tests.factories import RepositoryFactory


def _repo(full_name: str, **fields) -> Repository:
    topics = fields.pop("topics", [])
    description = fields.pop("description", "")
    return RepositoryFactory(
        full_name=full_name,
        description=description,
        topics=topics,
        search_text=Repository.search_text_for(full_name, description, topics),
        topics_text=Repository.topics_text_for(topics),
        **fields,
    )


@pytest.fixture
def catalogue(db):
    return [
        _repo("pallets/flask", language="Python", stars=66000, license="BSD-3-Clause",
              topics=["web", "wsgi"], description="The Python micro framework", task_count=3),
        _repo("psf/requests", language="Python", stars=51000, license="Apache-2.0",
              topics=["http"], description="HTTP for Humans", task_count=0),
        _repo("expressjs/express", language="JavaScript", stars=64000, license="MIT",
              topics=["web"], description="Fast web framework for node", task_count=1),
        _repo("gin-gonic/gin", language="Go", stars=77000, license="MIT", topics=["web"],
              description="HTTP web framework", is_enabled=False),
    ]  # fmt: skip


def names(**kwargs) -> list[str]:
    return [r.full_name for r in repository_list(filters=CatalogueFilter(**kwargs))]


def test_it_searches_name_and_description_case_insensitively(catalogue):
    assert names(query="FRAMEWORK") == ["pallets/flask", "expressjs/express"]
    assert names(query="requests") == ["psf/requests"]


def test_it_filters_by_language_topic_license_and_stars(catalogue):
    assert names(language="Python") == ["pallets/flask", "psf/requests"]
    assert names(topic="web") == ["pallets/flask", "expressjs/express"]
    assert names(topic="we") == []  # a topic matches whole, not as a prefix
    assert names(license="MIT") == ["expressjs/express"]
    assert names(min_stars=60000, max_stars=65000) == ["expressjs/express"]


def test_it_sorts_by_name_and_least_used(catalogue):
    assert names(sort="name") == ["expressjs/express", "pallets/flask", "psf/requests"]
    assert names(sort="least_used") == ["psf/requests", "expressjs/express", "pallets/flask"]


def test_withdrawn_repositories_are_not_offered(catalogue):
    assert "gin-gonic/gin" not in names()


def test_the_page_paginates_and_keeps_the_filters(client, contractor, db):
    for n in range(30):
        _repo(f"org/repo{n:02d}", stars=n, language="Rust")
    client.force_login(contractor)
    page = client.get(reverse("repos:list"), {"language": "Rust", "sort": "name"}).content.decode()
    assert "30 repositories" in page and "Page 1 of 2" in page
    assert "org/repo00" in page and "org/repo29" not in page
    assert 'href="?language=Rust&amp;sort=name&amp;page=2"' in page


@pytest.mark.parametrize(
    "params",
    [
        {"min_stars": "many"},
        {"min_stars": "-1"},
        {"sort": "evil"},
        {"min_stars": "9", "max_stars": "2"},
    ],
)
def test_bad_filters_show_an_error_not_a_crash(client, contractor, catalogue, params):
    client.force_login(contractor)
    response = client.get(reverse("repos:list"), params)
    assert response.status_code == 200
    assert 'class="errors"' in response.content.decode()


def test_the_htmx_search_returns_only_the_results(client, contractor, catalogue):
    client.force_login(contractor)
    response = client.get(reverse("repos:list"), {"q": "http"}, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert page.lstrip().startswith('<section id="results">')
    assert "psf/requests" in page and "pallets/flask" not in page


def test_search_text_cannot_inject_markup(client, contractor, db):
    _repo("evil/x", description="<script>alert(1)</script>")
    client.force_login(contractor)
    page = client.get(reverse("repos:list")).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_the_count_is_capped_for_a_huge_catalogue(client, contractor, db, monkeypatch):
    from repos import selectors

    monkeypatch.setattr(selectors, "COUNT_CAP", 5)
    for n in range(7):
        _repo(f"org/many{n}", stars=n)
    client.force_login(contractor)
    page = client.get(reverse("repos:list")).content.decode()
    assert "More than 5 repositories" in page
    assert "Page 1 of 1" in page  # pages follow the capped count (6 rows, 25 a page)


def test_the_language_list_follows_the_catalogue(db, django_capture_on_commit_callbacks):
    from repos.selectors import repository_languages

    _repo("a/b", language="Zig")
    assert "Zig" in repository_languages()
    _repo("c/d", language="Nim")
    # Cached: a plain insert does not show up until the catalogue changes through a service.
    assert "Nim" not in repository_languages()
    from repos.services import repository_set_enabled

    with django_capture_on_commit_callbacks(execute=True):
        repository_set_enabled(
            repositories=Repository.objects.filter(full_name="c/d"), enabled=True
        )
    assert "Nim" in repository_languages()
