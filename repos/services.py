"""Writes and git work for repositories: cloning, pinning, and reading context at a commit."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from marlin.exceptions import ApplicationError, InvalidTransition
from marlin.reaping import resend_stale_queued
from repos import git_client, highlighting, importing, jobs, selectors
from repos.models import Repository

logger = logging.getLogger(__name__)

_TEXT_SUFFIXES = {
    ".py", ".md", ".txt", ".rst", ".js", ".ts", ".go", ".rs", ".java", ".c", ".h", ".cpp",
    ".rb", ".toml", ".cfg", ".ini", ".yml", ".yaml", ".json", ".html", ".css", ".sh",
}  # fmt: skip


@dataclass
class RepoContext:
    """What a model is told about the repository: its file list and some files' contents."""

    paths: list[str]
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Crumb:
    name: str
    path: str


@dataclass
class BrowseView:
    """What the browse page shows: a folder's entries, or one file (highlighted or a notice)."""

    path: str
    crumbs: list[Crumb]
    entries: list[git_client.DirEntry] | None = None
    file_html: str = ""
    file_size: int = 0
    notice: str = ""
    symlink_target: str = ""


@dataclass
class ImportReport:
    """What an import did: counts, and every rejected row with its line and reason."""

    created: int = 0
    updated: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return self.created + self.updated


_IMPORT_BATCH = 1000
_IMPORT_FIELDS = [
    "clone_url", "html_url", "default_branch", "language", "stars", "description", "license",
    "topics", "is_archived", "size_kb", "pushed_at", "search_text", "topics_text", "updated_at",
]  # fmt: skip


def repository_import(*, content: bytes, filename: str) -> ImportReport:
    """Upsert the catalogue from a file of GitHub repository objects (JSON, JSONL) or a CSV.

    Rows are upserted by full_name in batches inside one transaction: every good row is
    written whole, every bad row is reported and written not at all. Enabled flags, quotas,
    clone state and task counts of existing rows are kept. Raises ApplicationError when the
    file as a whole cannot be read.
    """
    report = ImportReport()
    rows: dict[str, importing.RepositoryRow] = {}
    try:
        for parsed in importing.parse(
            content, filename=filename, allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES
        ):
            if parsed.row is None:
                report.rejected.append((parsed.line, parsed.error or "invalid row"))
            else:
                # A name repeated in one file: the last occurrence wins, as in an upsert.
                rows[parsed.row.full_name] = parsed.row
    except importing.RowError as exc:
        raise ApplicationError(f"Cannot import {filename}: {exc}") from exc
    now = timezone.now()
    names = list(rows)
    with transaction.atomic():
        for start in range(0, len(names), _IMPORT_BATCH):
            batch = names[start : start + _IMPORT_BATCH]
            existing = set(
                Repository.objects.filter(full_name__in=batch).values_list("full_name", flat=True)
            )
            objects = [_repository_from_row(rows[name], now) for name in batch]
            Repository.objects.bulk_create(
                objects,
                update_conflicts=True,
                unique_fields=["full_name"],
                update_fields=_IMPORT_FIELDS,
            )
            report.updated += len(existing)
            report.created += len(batch) - len(existing)
    transaction.on_commit(selectors.repository_languages_forget)
    return report


def _repository_from_row(row: importing.RepositoryRow, now) -> Repository:
    return Repository(
        full_name=row.full_name,
        clone_url=row.clone_url,
        html_url=row.html_url,
        default_branch=row.default_branch,
        language=row.language,
        stars=row.stars,
        description=row.description,
        license=row.license,
        topics=row.topics,
        is_archived=row.is_archived,
        size_kb=row.size_kb,
        pushed_at=row.pushed_at,
        search_text=Repository.search_text_for(row.full_name, row.description, row.topics),
        topics_text=Repository.topics_text_for(row.topics),
        created_at=now,
        updated_at=now,
    )


def repository_cache_path(repository: Repository) -> Path:
    """Where the repository's one shared bare clone lives (validated names only)."""
    owner, name = repository.full_name.split("/", 1)
    return Path(settings.MARLIN_REPO_CACHE_DIR) / owner / f"{name}.git"


def repository_queue_clone(*, repository: Repository) -> Repository:
    """Mark the repository QUEUED and enqueue its clone job once the transaction commits.

    Asking again while a clone is queued or running is harmless: nothing more is queued.
    """
    git_client.validate_clone_url(
        repository.clone_url, allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES
    )
    try:
        repository.queue_clone()
    except InvalidTransition:
        if repository.clone_status in (
            Repository.CloneStatus.QUEUED,
            Repository.CloneStatus.CLONING,
        ):
            return repository
        raise
    transaction.on_commit(lambda: jobs.repository_clone_run.delay(repository.pk), robust=True)
    return repository


def repository_clone_crashed(*, repository_id: int) -> None:
    """Fail a clone whose job crashed, so the page offers a retry instead of polling forever."""
    repository = Repository.objects.get(pk=repository_id)
    if repository.clone_status != Repository.CloneStatus.CLONING:
        return
    try:
        repository.fail_cloning(reason="The clone stopped because of an internal error; retry it.")
    except InvalidTransition:
        return


def repository_reap_stale(*, now=None) -> dict[str, int]:
    """Fail clones CLONING past the clone time limit; re-send clones left QUEUED."""
    now = now or timezone.now()
    limit = timedelta(seconds=settings.MARLIN_CLONE_TIMEOUT_SECONDS + 120)
    failed = 0
    for repository in Repository.objects.filter(
        clone_status=Repository.CloneStatus.CLONING, updated_at__lt=now - limit
    ):
        try:
            repository.fail_cloning(reason="The clone was interrupted; retry it.")
        except InvalidTransition:
            continue
        failed += 1
    requeued = resend_stale_queued(
        Repository.objects.filter(clone_status=Repository.CloneStatus.QUEUED),
        now=now,
        send=jobs.repository_clone_run.delay,
    )
    return {"failed": failed, "requeued": requeued}


def repository_clone(*, repository_id: int) -> Repository | None:
    """Claim a queued clone and carry it out; returns None when another worker claimed it.

    The clone runs outside any transaction (it can take minutes); only the status moves
    are written to the database.
    """
    repository = Repository.objects.get(pk=repository_id)
    try:
        repository.start_cloning()
    except InvalidTransition:
        logger.info("clone of %s already claimed (%s)", repository, repository.clone_status)
        return None
    try:
        git_client.clone_or_fetch(
            repository.clone_url,
            repository_cache_path(repository),
            allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES,
            timeout=settings.MARLIN_CLONE_TIMEOUT_SECONDS,
            max_bytes=settings.MARLIN_CLONE_MAX_MB * 1024 * 1024,
            blob_limit=settings.MARLIN_BROWSE_MAX_FILE_BYTES,
        )
    except git_client.GitError as exc:
        repository.fail_cloning(reason=exc.message)
        return repository
    repository.finish_cloning(cloned_at=timezone.now())
    return repository


def repository_count_task(*, repository: Repository) -> None:
    """Count one more task on the repository (kept on the row for the "least used" sort)."""
    Repository.objects.filter(pk=repository.pk).update(task_count=F("task_count") + 1)


def repository_set_enabled(*, repositories: QuerySet[Repository], enabled: bool) -> int:
    """Offer or withdraw repositories for new tasks; existing tasks are unaffected."""
    count = repositories.update(is_enabled=enabled, updated_at=timezone.now())
    transaction.on_commit(selectors.repository_languages_forget)
    return count


def repository_refs(*, repository: Repository) -> dict[str, list[str]]:
    """Branches and tags of the cached clone (empty when there is no cache yet)."""
    if not repository.is_ready:
        return {"branches": [], "tags": []}
    try:
        return git_client.list_refs(
            repository_cache_path(repository), allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES
        )
    except git_client.GitError:
        return {"branches": [], "tags": []}


def repository_browse(*, repository: Repository, sha: str, path: str, max_bytes: int) -> BrowseView:
    """A folder listing or one file of the repository at `sha`, read from git's object store.

    Symlinks are shown as links, never followed; binary and oversized files get a notice;
    highlighted files are cached by blob id, so a file is highlighted once.
    """
    if not repository.is_ready:
        raise ApplicationError(f"{repository} is not cloned yet.")
    dest = repository_cache_path(repository)
    bases = settings.MARLIN_GIT_ALLOWED_BASES
    parts = [p for p in path.split("/") if p] if path else []
    crumbs = [Crumb(name=name, path="/".join(parts[: i + 1])) for i, name in enumerate(parts)]
    if not path or _is_directory(dest, sha, path, bases):
        entries = git_client.list_directory(dest, sha, path, allowed_bases=bases)
        return BrowseView(path=path, crumbs=crumbs, entries=entries)
    blob = git_client.read_blob(dest, sha, path, allowed_bases=bases, max_bytes=max_bytes)
    view = BrowseView(path=path, crumbs=crumbs, file_size=blob.size)
    if blob.is_symlink:
        view.symlink_target = blob.data.decode("utf-8", errors="replace")
    elif blob.size > max_bytes:
        view.notice = (
            f"This file is {blob.size:,} bytes, over the {max_bytes:,}-byte limit for display."
        )
    elif highlighting.is_binary(blob.data):
        view.notice = f"This is a binary file ({blob.size:,} bytes)."
    else:
        view.file_html = highlighting.highlight_file_cached(path=path, oid=blob.oid, data=blob.data)
    return view


def _is_directory(dest: Path, sha: str, path: str, bases: list[str]) -> bool:
    parent, _, name = path.rpartition("/")
    for entry in git_client.list_directory(dest, sha, parent, allowed_bases=bases):
        if entry.name == name:
            return entry.kind == "dir"
    raise git_client.GitError(f"No file or folder {path!r} at this commit.")


def repository_resolve_commit(*, repository: Repository, ref: str) -> str:
    """Pin `ref` (branch, tag or sha; the default branch when empty) to a full commit sha."""
    if not repository.is_ready:
        raise ApplicationError(f"{repository} is not cloned yet; wait until it is ready.")
    return git_client.resolve_commit(
        repository_cache_path(repository),
        ref or repository.default_branch,
        allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES,
    )


def repository_read_text(*, repository: Repository, sha: str, path: str, max_bytes: int) -> str:
    """A file's text at `sha` (undecodable bytes replaced); raises GitError if unreadable."""
    data = git_client.read_file(
        repository_cache_path(repository),
        sha,
        path,
        allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES,
        max_bytes=max_bytes,
    )
    return data.decode("utf-8", errors="replace")


def repository_paths(*, repository: Repository, sha: str) -> list[str]:
    """Every file path at `sha` (no blob is read)."""
    entries = git_client.list_tree(
        repository_cache_path(repository), sha, allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES
    )
    return [entry.path for entry in entries]


def repository_context(
    *,
    repository: Repository,
    sha: str,
    wanted: list[str] | None = None,
    budget_bytes: int = 60_000,
    paths: list[str] | None = None,
) -> RepoContext:
    """The file list at `sha` and the contents of the most relevant text files within a budget.

    Files named in `wanted` come first, then READMEs, then other text files in tree order.
    """
    if paths is None:
        paths = repository_paths(repository=repository, sha=sha)
    known = set(paths)
    readmes = [p for p in paths if Path(p).name.lower().startswith("readme")]
    texts = [p for p in paths if Path(p).suffix.lower() in _TEXT_SUFFIXES]
    ordered = [p for p in dict.fromkeys([*(wanted or []), *readmes, *texts]) if p in known]
    context = RepoContext(paths=paths)
    files = git_client.read_files(
        repository_cache_path(repository),
        sha,
        ordered,
        allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES,
        budget_bytes=budget_bytes,
    )
    for path, data in files.items():
        context.files[path] = data.decode("utf-8", errors="replace")
    return context
