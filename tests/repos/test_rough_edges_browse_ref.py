"""Issue 15: switching the file browser to a tag keeps the tag chosen and the path shown."""

from __future__ import annotations

import re
import shutil

import pytest
from django.urls import reverse

from repos import services
from repos.models import Repository
from tests.factories import RepositoryFactory
from tests.repos.helpers import build_bare_repository, git


@pytest.fixture
def tagged_repository(db, git_server, repo_cache_dir, tmp_path) -> tuple[Repository, dict]:
    """main and tag v1.0 at the first commit (src/app.py); branch next adds docs/ and drops src/."""
    repository = RepositoryFactory(full_name="acme/tagged")
    bare = git_server.root / "acme" / "tagged.git"
    shas = build_bare_repository(
        bare,
        {"README.md": "# tagged\n", "src/app.py": "print(1)\n"},
        branches={"next": {"docs/guide.md": "# guide\n"}},
        tags=["v1.0"],
    )
    # Drop src/ on `next`, so a path of main is missing there.
    work = tmp_path / "work"
    git("clone", "-q", "-b", "next", str(bare), str(work), cwd=tmp_path)
    git("rm", "-q", "-r", "src", cwd=work)
    git("commit", "-q", "-m", "drop src", cwd=work)
    git("push", "-q", "origin", "next", cwd=work)
    shas["next"] = git("rev-parse", "HEAD", cwd=work)
    repository.clone_url = f"{git_server.base_url}/acme/tagged.git"
    repository.save()
    shutil.rmtree(services.repository_cache_path(repository), ignore_errors=True)
    repository.queue_clone()
    services.repository_clone(repository_id=repository.pk)
    repository.refresh_from_db()
    assert repository.is_ready, repository.clone_error
    return repository, shas


def _switch(client, repository, **params):
    return client.get(reverse("repos:browse_ref", args=[repository.pk]), params)


def _selected(page: str) -> list[str]:
    switcher = page[page.index('id="browse-ref"') : page.index("</select>")]
    return re.findall(r'<option value="([^"]*)" selected>', switcher)


def test_switching_to_a_tag_keeps_the_file_and_shows_the_tag_chosen(
    client, contractor, tagged_repository
):
    repository, shas = tagged_repository
    client.force_login(contractor)
    response = _switch(client, repository, ref="v1.0", path="src/app.py")
    assert response.status_code == 302
    browse = reverse("repos:browse", args=[repository.pk, shas["v1.0"], "src/app.py"])
    assert response["Location"] == f"{browse}?ref=v1.0"

    page = client.get(response["Location"]).content.decode()
    assert "src/app.py" in page and "print" in page
    # main points at the same commit: the page must still say the tag was chosen.
    assert _selected(page) == ["v1.0"]
    # Moving up to the folder keeps the tag too.
    folder = reverse("repos:browse", args=[repository.pk, shas["v1.0"], "src"])
    assert f'href="{folder}?ref=v1.0"' in page


def test_switching_to_a_branch_without_the_path_shows_its_root_with_a_note(
    client, contractor, tagged_repository
):
    repository, shas = tagged_repository
    client.force_login(contractor)
    response = _switch(client, repository, ref="next", path="src/app.py")
    assert response["Location"] == (
        reverse("repos:browse", args=[repository.pk, shas["next"], ""]) + "?ref=next"
    )
    page = client.get(response["Location"]).content.decode()
    assert "next has no src/app.py; showing its top folder instead." in page
    assert _selected(page) == ["next"]
    assert "docs/" in page


def test_the_default_branch_is_shown_chosen_without_a_ref_in_the_link(
    client, contractor, tagged_repository
):
    repository, shas = tagged_repository
    client.force_login(contractor)
    response = _switch(client, repository)
    assert response["Location"] == reverse("repos:browse", args=[repository.pk, shas["main"], ""])
    assert _selected(client.get(response["Location"]).content.decode()) == ["main"]


def test_a_ref_that_no_longer_points_at_the_commit_is_not_shown_chosen(
    client, contractor, tagged_repository
):
    repository, shas = tagged_repository
    client.force_login(contractor)
    # An old link: `next` at main's commit is a lie, so the bare commit is shown instead.
    url = reverse("repos:browse", args=[repository.pk, shas["main"], ""])
    page = client.get(url, {"ref": "next"}).content.decode()
    assert _selected(page) == [shas["main"]]
    assert f"commit {shas['main'][:12]}" in page


def test_a_switch_to_an_unknown_ref_goes_back_to_the_repository(
    client, contractor, tagged_repository
):
    repository, _ = tagged_repository
    client.force_login(contractor)
    response = _switch(client, repository, ref="nope", path="src")
    assert response["Location"] == reverse("repos:detail", args=[repository.pk])
