"""Browsing a hostile repository at a pinned commit shows nothing it should not."""

from __future__ import annotations

import os
import shutil

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils.http import urlencode

from repos import git_client, services
from repos.models import Repository
from tests.factories import RepositoryFactory
from tests.repos.helpers import build_bare_repository

BIG = os.urandom(64 * 1024)


@pytest.fixture
def hostile_repository(db, git_server, repo_cache_dir, settings) -> tuple[Repository, dict]:
    settings.MARLIN_BROWSE_MAX_FILE_BYTES = 32 * 1024
    repository = RepositoryFactory(full_name="evil/repo")
    shas = build_bare_repository(
        git_server.root / "evil" / "repo.git",
        {
            "README.md": "# evil\n",
            "src/app.py": "def main():\n    return '<script>alert(1)</script>'\n",
            "<img src=x onerror=alert(1)>.html": "<script>alert('x')</script>\n",
            "blob.bin": b"\x00\x01\x02binary",
            "huge.dat": BIG,
            "hooks/post-checkout": "#!/bin/sh\ntouch /tmp/marlin-pwned\n",
            "zdir/inner.txt": "inside\n",
        },
        symlinks={"passwd": "/etc/passwd", "up": "../../../../etc/shadow"},
        branches={"feature/x": {"src/app.py": "def main():\n    return 2\n"}},
        tags=["v1.0"],
    )
    repository.clone_url = f"{git_server.base_url}/evil/repo.git"
    repository.save()
    shutil.rmtree(services.repository_cache_path(repository), ignore_errors=True)
    repository.queue_clone()
    services.repository_clone(repository_id=repository.pk)
    repository.refresh_from_db()
    assert repository.is_ready, repository.clone_error
    return repository, shas


def _browse(client, repository, sha, path=""):
    return client.get(reverse("repos:browse", args=[repository.pk, sha, path]))


def test_the_tree_lists_folders_first_with_sizes(client, contractor, hostile_repository):
    repository, shas = hostile_repository
    client.force_login(contractor)
    page = _browse(client, repository, shas["main"]).content.decode()
    order = [page.index(name) for name in ("hooks/", "src/", "zdir/", "blob.bin", "README.md")]
    assert order == sorted(order)
    assert "7\xa0bytes" in page  # README.md (filesizeformat uses a no-break space)
    # The huge file was left on the server by the partial clone: its size is unknown here.
    assert "large" in page


def test_a_file_is_highlighted_with_linkable_lines_and_escaped(
    client, contractor, hostile_repository
):
    repository, shas = hostile_repository
    client.force_login(contractor)
    page = _browse(client, repository, shas["main"], "src/app.py").content.decode()
    assert 'id="L-1"' in page and 'href="#L-2"' in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page


def test_a_file_named_like_html_is_shown_as_text(client, contractor, hostile_repository):
    repository, shas = hostile_repository
    client.force_login(contractor)
    page = _browse(client, repository, shas["main"]).content.decode()
    assert "<img src=x onerror=alert(1)>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    name = "<img src=x onerror=alert(1)>.html"
    file_page = _browse(client, repository, shas["main"], name).content.decode()
    assert "<script>alert('x')</script>" not in file_page


def test_symlinks_are_shown_as_links_and_never_followed(client, contractor, hostile_repository):
    repository, shas = hostile_repository
    client.force_login(contractor)
    page = _browse(client, repository, shas["main"], "passwd").content.decode()
    assert "Symbolic link to <code>/etc/passwd</code>" in page
    assert "root:" not in page
    page = _browse(client, repository, shas["main"], "up").content.decode()
    assert "../../../../etc/shadow" in page


def test_binary_and_oversized_files_get_a_notice(client, contractor, hostile_repository):
    repository, shas = hostile_repository
    client.force_login(contractor)
    assert "binary file" in _browse(client, repository, shas["main"], "blob.bin").content.decode()
    page = _browse(client, repository, shas["main"], "huge.dat").content.decode()
    assert "over the 32,768-byte limit" in page


@pytest.mark.parametrize(
    "path",
    ["../README.md", "src/../../etc/passwd", "/etc/passwd", "%2e%2e/README.md", "src//app.py"],
)
def test_no_path_escapes_the_repository(client, contractor, hostile_repository, path):
    repository, shas = hostile_repository
    client.force_login(contractor)
    url = reverse("repos:browse", args=[repository.pk, shas["main"], "x"])[:-1] + path
    assert client.get(url).status_code == 404


def test_a_nul_byte_in_the_path_is_refused(client, contractor, hostile_repository):
    repository, shas = hostile_repository
    client.force_login(contractor)
    url = reverse("repos:browse", args=[repository.pk, shas["main"], "x"])[:-1] + "README.md%00"
    assert client.get(url).status_code in (400, 404)


def _plant(folder, name: str, ran) -> str:
    script = folder / name
    script.write_text(f'#!/bin/sh\necho "{name}" >> {ran}\n')
    script.chmod(0o755)
    return str(script)


def _use_the_clone(client, contractor, repository, sha) -> None:
    """A re-fetch, browsing and a checkout for an agent with its diff: every git call."""
    repository.queue_clone()
    services.repository_clone(repository_id=repository.pk)
    repository.refresh_from_db()
    assert repository.is_ready, repository.clone_error
    client.force_login(contractor)
    assert _browse(client, repository, sha, "src/app.py").status_code == 200
    cache = services.repository_cache_path(repository)
    bases = settings.MARLIN_GIT_ALLOWED_BASES
    with git_client.temporary_worktree(cache, sha, allowed_bases=bases) as worktree:
        assert (worktree / "README.md").read_text() == "# evil\n"
        git_client.worktree_diff(worktree, sha)


HOOKS = ("reference-transaction", "post-index-change", "post-checkout", "pre-auto-gc")


def test_the_clones_own_hooks_never_run(client, contractor, hostile_repository, tmp_path):
    """Files named like hooks in the tree are only files; what could run is the shared
    clone's own metadata: a hook in its hooks folder or in a core.hooksPath its config
    names. Our git calls override core.hooksPath, so none of them runs."""
    repository, shas = hostile_repository
    cache = services.repository_cache_path(repository)
    ran = tmp_path / "ran.log"
    elsewhere = tmp_path / "hooks"
    elsewhere.mkdir()
    for folder in (elsewhere, cache / "hooks"):
        folder.mkdir(exist_ok=True)
        for hook in HOOKS:
            _plant(folder, hook, ran)
    with (cache / "config").open("a") as config:
        config.write(f"[core]\n\thooksPath = {elsewhere}\n")
    _use_the_clone(client, contractor, repository, shas["main"])
    assert not ran.exists(), f"hooks ran: {ran.read_text()}"


def test_the_clones_own_fsmonitor_never_runs(client, contractor, hostile_repository, tmp_path):
    repository, shas = hostile_repository
    cache = services.repository_cache_path(repository)
    ran = tmp_path / "ran.log"
    fsmonitor = _plant(tmp_path, "fsmonitor", ran)
    with (cache / "config").open("a") as config:
        config.write(f"[core]\n\tfsmonitor = {fsmonitor}\n")
    _use_the_clone(client, contractor, repository, shas["main"])
    assert not ran.exists(), f"ran: {ran.read_text()}"


def test_a_ref_is_pinned_to_its_commit_before_browsing(client, contractor, hostile_repository):
    repository, shas = hostile_repository
    client.force_login(contractor)
    for ref in ("feature/x", "v1.0", "main"):
        response = client.get(reverse("repos:browse_ref", args=[repository.pk]), {"ref": ref})
        assert response.status_code == 302
        browse = reverse("repos:browse", args=[repository.pk, shas[ref], ""])
        # The default branch is implied; another branch or tag rides along to be shown chosen.
        chosen = browse if ref == "main" else f"{browse}?{urlencode({'ref': ref})}"
        assert response["Location"] == chosen
    response = client.get(reverse("repos:browse_ref", args=[repository.pk]), {"ref": "--all"})
    assert response.status_code == 302
    assert response["Location"] == reverse("repos:detail", args=[repository.pk])


def test_the_highlighted_file_is_cached_by_blob(hostile_repository, monkeypatch):
    from repos import highlighting

    repository, shas = hostile_repository
    calls = []
    real = highlighting.highlight

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(highlighting, "highlight", counting)
    views = [
        services.repository_browse(
            repository=repository, sha=sha, path="README.md", max_bytes=32 * 1024
        )
        for sha in (shas["main"], shas["feature/x"], shas["main"])
    ]
    # README.md is the same blob on both commits: highlighted once, then served from cache.
    assert len(calls) <= 1
    assert views[0].file_html == views[1].file_html == views[2].file_html
    assert "evil" in views[0].file_html


def test_anonymous_users_cannot_browse(client, hostile_repository):
    repository, shas = hostile_repository
    response = _browse(client, repository, shas["main"])
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_task_form_offers_the_repositorys_branches_and_tags(
    client, contractor, hostile_repository
):
    repository, _ = hostile_repository
    client.force_login(contractor)
    page = client.get(reverse("repos:ref_options"), {"repository": repository.pk}).content.decode()
    assert '<option value="feature/x">branch</option>' in page
    assert '<option value="v1.0">tag</option>' in page
    assert client.get(reverse("repos:ref_options"), {"repository": "x"}).status_code == 200
