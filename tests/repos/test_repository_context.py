from __future__ import annotations

from repos import git_client
from repos.services import repository_cache_path, repository_context


def _head(repository) -> str:
    from django.conf import settings

    return git_client.resolve_commit(
        repository_cache_path(repository), "main", allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES
    )


def test_it_lists_every_path_and_reads_wanted_files_first(ready_repository):
    context = repository_context(
        repository=ready_repository, sha=_head(ready_repository), wanted=["calc/ops.py"]
    )
    assert set(context.paths) >= {"README.md", "calc/ops.py", "tests/test_ops.py"}
    assert next(iter(context.files)) == "calc/ops.py"
    assert "def div" in context.files["calc/ops.py"]


def test_it_stays_within_the_byte_budget(ready_repository):
    budget = 60
    context = repository_context(
        repository=ready_repository, sha=_head(ready_repository), budget_bytes=budget
    )
    assert context.files  # something fits
    assert sum(len(t.encode()) for t in context.files.values()) <= budget
    assert "calc/ops.py" not in context.files  # 60 bytes of README leave no room for it


def test_unknown_wanted_paths_are_ignored(ready_repository):
    context = repository_context(
        repository=ready_repository,
        sha=_head(ready_repository),
        wanted=["../../etc/passwd", "nope.py"],
    )
    assert "../../etc/passwd" not in context.files and "nope.py" not in context.files
