"""Issue 15: the pinned commit is shown with its message and date, never failing the page."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.cache import cache
from django.template.loader import render_to_string

from repos import services
from repos.models import Repository
from tasks.models import Task
from tests.factories import RepositoryFactory
from tests.repos.helpers import GIT_ENV, git

SUBJECT = "<b>Fix</b> the “parser” so <script>alert(1)</script> " + "x" * 120
MISSING_SHA = "0" * 40


def _commit_with_date(bare: Path, work: Path) -> str:
    """One commit on main with SUBJECT, a body, and a committer date of 2026-11-30."""
    git("init", "-q", "-b", "main", cwd=work)
    (work / "README.md").write_text("# pinned\n")
    git("add", "-A", cwd=work)
    dated = {**GIT_ENV, "GIT_COMMITTER_DATE": "2026-11-30T12:00:00+00:00"}
    subprocess.run(
        ["git", "commit", "-q", "-m", SUBJECT, "-m", "The body is not shown."],
        cwd=work,
        env=dated,
        check=True,
    )
    sha = git("rev-parse", "HEAD", cwd=work)
    shutil.rmtree(bare, ignore_errors=True)
    git("clone", "-q", "--bare", str(work), str(bare), cwd=work)
    return sha


@pytest.fixture
def pinned(db, git_server, repo_cache_dir, tmp_path) -> tuple[Repository, str]:
    repository = RepositoryFactory(full_name="acme/pinned")
    (tmp_path / "work").mkdir()
    sha = _commit_with_date(git_server.root / "acme" / "pinned.git", tmp_path / "work")
    repository.clone_url = f"{git_server.base_url}/acme/pinned.git"
    repository.save()
    shutil.rmtree(services.repository_cache_path(repository), ignore_errors=True)
    repository.queue_clone()
    services.repository_clone(repository_id=repository.pk)
    repository.refresh_from_db()
    assert repository.is_ready, repository.clone_error
    # The cache outlives test transactions (Redis); start each test without this commit.
    cache.delete(services.commit_summary_cache_key(repository_id=repository.pk, sha=sha))
    return repository, sha


def _render(repository: Repository, sha: str) -> str:
    return render_to_string(
        "tasks/_pinned_commit.html", {"task": Task(repository=repository, commit_sha=sha)}
    )


def test_it_shows_the_sha_the_first_line_of_the_message_and_the_date(pinned):
    repository, sha = pinned
    html = _render(repository, sha)
    assert f'<code title="{sha}">{sha[:12]}</code>' in html
    assert '<time datetime="2026-11-30T12:00:00+00:00">2026-11-30</time>' in html
    assert "The body is not shown." not in html


def test_the_message_is_escaped_and_truncated(pinned):
    repository, sha = pinned
    html = _render(repository, sha)
    # Commit messages are written by whoever pushed: markup must reach the page as text.
    assert "<script>" not in html and "<b>" not in html
    assert '“<span class="commit-subject"' in html
    assert "&lt;b&gt;Fix&lt;/b&gt; the “parser” so &lt;script&gt;" in html
    shown = html.split('class="commit-subject"', 1)[1].split(">", 1)[1].split("</span>", 1)[0]
    assert shown.endswith("…")
    assert "x" * 60 not in shown  # cut to 72 characters, not the whole 180-character line


def test_it_is_read_once_and_then_served_from_the_cache(pinned):
    repository, sha = pinned
    assert "2026-11-30" in _render(repository, sha)
    # With the clone gone git cannot answer; the commit is immutable, so the cache still can.
    shutil.rmtree(services.repository_cache_path(repository))
    assert "2026-11-30" in _render(repository, sha)


def test_a_commit_git_cannot_read_shows_only_the_sha(pinned):
    repository, _ = pinned
    html = _render(repository, MISSING_SHA)
    assert html.strip() == (
        f'<span class="pinned-commit"><code title="{MISSING_SHA}">{MISSING_SHA[:12]}</code></span>'
    )


def test_a_repository_whose_clone_is_gone_shows_only_the_sha(pinned):
    repository, sha = pinned
    shutil.rmtree(services.repository_cache_path(repository))
    html = _render(repository, sha)
    assert "pinned-commit" in html and sha[:12] in html
    assert "2026-11-30" not in html


def test_a_repository_never_cloned_shows_only_the_sha(db):
    repository = RepositoryFactory(full_name="acme/never")
    html = _render(repository, "a" * 40)
    assert f'<code title="{"a" * 40}">{"a" * 12}</code></span>' in html
