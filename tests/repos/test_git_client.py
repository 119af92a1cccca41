from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from repos import git_client
from repos.models import Repository
from repos.services import repository_cache_path, repository_clone

GITHUB = ["https://github.com"]


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/pallets/flask",
        "https://github.com/pallets/flask.git",
        "https://github.com/a-b/c.d_e-f",
    ],
)
def test_it_accepts_github_repository_addresses(url: str) -> None:
    assert git_client.validate_clone_url(url, allowed_bases=GITHUB).endswith(".git")


@pytest.mark.parametrize(
    "url",
    [
        "ext::sh -c touch% /tmp/pwned",
        "fd::17",
        "file:///etc",
        "/etc/passwd",
        "../repo",
        "ssh://git@github.com/pallets/flask.git",
        "git@github.com:pallets/flask.git",
        "http://github.com/pallets/flask",
        "--upload-pack=touch /tmp/pwned",
        "-uhttps://github.com/a/b",
        "https://user:pass@github.com/pallets/flask",
        "https://token@github.com/pallets/flask",
        "https://github.com:8443/pallets/flask",
        "https://github.com/pallets/flask?x=1",
        "https://github.com/pallets/flask#frag",
        "https://github.com/pallets/%2e%2e",
        "https://github.com/pallets/flask/extra",
        "https://github.com/-pallets/flask",
        "https://github.com/pallets/..",
        "https://github.com/pallets/fl ask",
        "https://github.com/pallets/flask\n",
        "https://evil.example/pallets/flask",
        "https://github.com.evil.example/pallets/flask",
        "",
    ],
)
def test_it_rejects_hostile_addresses_before_git_runs(url: str) -> None:
    with pytest.raises(git_client.UnsafeRepositoryUrl):
        git_client.validate_clone_url(url, allowed_bases=GITHUB)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/pallets/flask",
        "https://github.com//evil.example/x",
        "https://github.com.evil.example/a/b",
        "https://github.comx/a/b",
        "https://github.com",
        "https://github.com/",
        "https://github.com/a/b/c",
        "HTTPS://github.com/a/b",
        "https://GitHub.com/a/b",
        "https://github.com:443/a/b",
        "http://127.0.0.1:8765/a/b",
        "http://127.0.0.1:87650/a/b",
    ],
)
def test_the_hand_split_of_an_allowed_address_is_urlsplits(url: str) -> None:
    """The import's fast path in validate_clone_url splits an address by hand; whatever it
    splits must be what urlsplit makes of it (a differing base or path would let an address
    through that the general path refuses)."""
    bases = [*GITHUB, "http://127.0.0.1:8765"]
    parts = urlsplit(url)
    assert git_client._base_and_path(url, bases) == (
        f"{parts.scheme}://{parts.netloc}",
        parts.path,
    )


def test_a_rejected_address_writes_nothing_to_disk(tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "x.git"
    with pytest.raises(git_client.UnsafeRepositoryUrl):
        git_client.clone_or_fetch(
            "file:///etc", dest, allowed_bases=GITHUB, timeout=5, max_bytes=10**6, blob_limit=10**6
        )
    assert not (tmp_path / "cache").exists()


def test_it_clones_over_http_and_reads_files(ready_repository: Repository) -> None:
    dest = repository_cache_path(ready_repository)
    assert (dest / "HEAD").exists()
    sha = git_client.resolve_commit(dest, "main", allowed_bases=_bases())
    paths = [e.path for e in git_client.list_tree(dest, sha, allowed_bases=_bases())]
    assert "calc/ops.py" in paths
    text = git_client.read_file(dest, sha, "calc/ops.py", allowed_bases=_bases(), max_bytes=10_000)
    assert b"def add" in text


@pytest.mark.parametrize(
    "path", ["../etc/passwd", "/etc/passwd", "calc/../../x", "a\x00b", "./calc/ops.py"]
)
def test_reading_never_escapes_the_repository(ready_repository: Repository, path: str) -> None:
    dest = repository_cache_path(ready_repository)
    sha = git_client.resolve_commit(dest, "main", allowed_bases=_bases())
    with pytest.raises(git_client.GitError):
        git_client.read_file(dest, sha, path, allowed_bases=_bases(), max_bytes=10_000)


@pytest.mark.parametrize("ref", ["--all", "-n", "main --upload-pack=x", ""])
def test_option_like_refs_are_refused(ready_repository: Repository, ref: str) -> None:
    with pytest.raises(git_client.GitError):
        git_client.resolve_commit(
            repository_cache_path(ready_repository), ref, allowed_bases=_bases()
        )


def test_a_missing_repository_fails_fast_with_a_reason(served_repository: Repository) -> None:
    served_repository.clone_url = served_repository.clone_url.replace("calc", "nope")
    served_repository.save()
    served_repository.queue_clone()
    repository_clone(repository_id=served_repository.pk)
    served_repository.refresh_from_db()
    assert served_repository.clone_status == Repository.CloneStatus.FAILED
    assert "git clone failed" in served_repository.clone_error
    # Nothing half-cloned is left in the cache.
    cache = repository_cache_path(served_repository)
    assert not cache.exists()
    assert not [p for p in cache.parent.iterdir() if p.name.startswith(".clone-")]


def test_a_second_clone_fetches_new_commits(ready_repository: Repository, git_server) -> None:
    owner, name = ready_repository.full_name.split("/")
    sha = git_client.create_bare_repository(
        git_server.root / owner / f"{name}.git", {"NEW.md": "new\n"}, message="Replace"
    )
    ready_repository.queue_clone()
    repository_clone(repository_id=ready_repository.pk)
    ready_repository.refresh_from_db()
    assert ready_repository.is_ready, ready_repository.clone_error
    dest = repository_cache_path(ready_repository)
    assert git_client.resolve_commit(dest, "main", allowed_bases=_bases()) == sha


def _bases() -> list[str]:
    from django.conf import settings

    return settings.MARLIN_GIT_ALLOWED_BASES
