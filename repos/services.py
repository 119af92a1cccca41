"""Writes and git work for repositories: cloning, pinning, and reading context at a commit."""

from __future__ import annotations

import io
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from marlin.exceptions import ApplicationError, InvalidTransition
from marlin.reaping import resend_stale_queued
from repos import git_client, highlighting, importing, jobs, selectors
from repos.catalogue_imports import ImportReport, repository_import_stream
from repos.models import Repository

logger = logging.getLogger(__name__)

_TEXT_SUFFIXES = {
    ".py", ".md", ".txt", ".rst", ".js", ".ts", ".go", ".rs", ".java", ".c", ".h", ".cpp",
    ".rb", ".toml", ".cfg", ".ini", ".yml", ".yaml", ".json", ".html", ".css", ".sh",
}  # fmt: skip


@dataclass
class RepoContext:
    """What a model is told about the repository: its file list and some files' contents.

    `note` says why fewer files were read than the byte budget allows (the time budget ran
    out); it is "" when reading finished.
    """

    paths: list[str]
    files: dict[str, str] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Crumb:
    name: str
    path: str


@dataclass
class BrowseView:
    """What the browse page shows: a folder's entries, or one file (highlighted or a notice)."""

    path: str
    crumbs: list[Crumb]
    entries: list[git_client.DirEntry] | None = None  # for a folder: this page's entries
    page: int = 1
    page_count: int = 1
    total_entries: int = 0
    file_html: str = ""
    file_size: int = 0
    notice: str = ""
    symlink_target: str = ""

    @property
    def next_page(self) -> int | None:
        return self.page + 1 if self.page < self.page_count else None

    @property
    def previous_page(self) -> int | None:
        return self.page - 1 if self.page > 1 else None


def repository_import(*, content: bytes, filename: str) -> ImportReport:
    """Upsert the catalogue from a file of GitHub repository objects (JSON, JSONL) or a CSV
    held in memory, while the caller waits.

    Every good row is written whole, every bad row is reported and written not at all, all
    in one transaction. Enabled flags, quotas, clone state and task counts of existing rows
    are kept. Raises ApplicationError when the file as a whole cannot be read. Uploads go
    through repos.catalogue_imports instead (stored, then imported by a worker).
    """
    return repository_import_stream(stream=io.BytesIO(content), filename=filename)


@transaction.atomic
def repository_add(
    *,
    clone_url: str,
    full_name: str = "",
    default_branch: str = "",
    html_url: str = "",
    description: str = "",
    language: str = "",
    license: str = "",
    topics: str | list[str] = "",
) -> Repository:
    """Add one repository by its clone URL (GitHub or an allowed internal git server) and
    queue its clone.

    Checked like a catalogue row: an http(s) address without credentials on a host of
    MARLIN_GIT_ALLOWED_BASES, shaped HOST/OWNER/NAME; `full_name` defaults to OWNER/NAME and
    `html_url` to the address without ".git". Raises ApplicationError, storing nothing, for a
    refused address or a repository (same name or same address) already in the catalogue.
    """
    bases = settings.MARLIN_GIT_ALLOWED_BASES
    canonical = git_client.validate_clone_url(clone_url.strip(), allowed_bases=bases)
    try:
        row = importing.normalise(
            {
                "full_name": full_name.strip() or canonical.split("/", 3)[3].removesuffix(".git"),
                "clone_url": canonical,
                "html_url": html_url.strip() or canonical.removesuffix(".git"),
                "default_branch": default_branch,
                "description": description,
                "language": language,
                "license": license,
                "topics": topics,
            },
            allowed_bases=bases,
        )
    except importing.RowError as exc:
        raise ApplicationError(str(exc)) from exc
    # GitHub names are case-insensitive, and the clone cache is one folder per name.
    same = Repository.objects.filter(
        Q(full_name__iexact=row.full_name) | Q(clone_url__iexact=row.clone_url)
    ).first()
    if same is not None:
        raise ApplicationError(f"{same.full_name} is already in the catalogue ({same.clone_url}).")
    repository = Repository(
        full_name=row.full_name,
        clone_url=row.clone_url,
        html_url=row.html_url,
        default_branch=row.default_branch,
        description=row.description,
        language=row.language,
        license=row.license,
        topics=row.topics,
    )
    try:
        repository.full_clean()
    except ValidationError as exc:
        raise ApplicationError(" ".join(exc.messages)) from exc
    repository.save()
    transaction.on_commit(selectors.repository_languages_forget)
    return repository_queue_clone(repository=repository)


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


# Entries per page of a folder: a folder of 100k files must not become a 17 MB page.
BROWSE_PAGE_SIZE = 500


def repository_browse(
    *, repository: Repository, sha: str, path: str, max_bytes: int, page: int = 1
) -> BrowseView:
    """A folder listing (one page of BROWSE_PAGE_SIZE entries) or one file of the repository
    at `sha`, read from git's object store.

    Symlinks are shown as links, never followed; binary and oversized files get a notice;
    highlighted files are cached by blob id, so a file is highlighted once. A page past the
    folder's last raises ApplicationError.
    """
    if not repository.is_ready:
        raise ApplicationError(f"{repository} is not cloned yet.")
    dest = repository_cache_path(repository)
    bases = settings.MARLIN_GIT_ALLOWED_BASES
    parts = [p for p in path.split("/") if p] if path else []
    crumbs = [Crumb(name=name, path="/".join(parts[: i + 1])) for i, name in enumerate(parts)]
    if not path or git_client.path_kind(dest, sha, path, allowed_bases=bases) == "dir":
        listing = git_client.list_directory(
            dest, sha, path, allowed_bases=bases,
            offset=(page - 1) * BROWSE_PAGE_SIZE, limit=BROWSE_PAGE_SIZE,
        )  # fmt: skip
        page_count = max(1, -(-listing.total // BROWSE_PAGE_SIZE))
        if not 1 <= page <= page_count:
            raise ApplicationError(
                f"This folder has {page_count} page(s); there is no page {page}."
            )
        return BrowseView(
            path=path, crumbs=crumbs, entries=listing.entries, page=page,
            page_count=page_count, total_entries=listing.total,
        )  # fmt: skip
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


def repository_resolve_commit(*, repository: Repository, ref: str) -> str:
    """Pin `ref` (branch, tag or sha; the default branch when empty) to a full commit sha."""
    if not repository.is_ready:
        raise ApplicationError(f"{repository} is not cloned yet; wait until it is ready.")
    return git_client.resolve_commit(
        repository_cache_path(repository),
        ref or repository.default_branch,
        allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES,
    )


@dataclass(frozen=True)
class RefSwitch:
    """Where switching the browser to another ref lands: the commit, the path kept when the
    commit has it (else the root), and a note saying when it did not."""

    sha: str
    path: str
    note: str = ""


def repository_switch_ref(*, repository: Repository, ref: str, path: str) -> RefSwitch:
    """Pin `ref` (the default branch when empty) and keep showing `path` if it exists there.

    Raises ApplicationError when the ref names nothing; a path missing at the new commit is
    not an error: the root is shown instead, with a note.
    """
    ref = ref.strip() or repository.default_branch
    sha = repository_resolve_commit(repository=repository, ref=ref)
    path = path.strip("/")
    if not path:
        return RefSwitch(sha=sha, path="")
    try:
        git_client.path_kind(
            repository_cache_path(repository),
            sha,
            path,
            allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES,
        )
    except git_client.GitError:
        return RefSwitch(
            sha=sha, path="", note=f"{ref} has no {path}; showing its top folder instead."
        )
    return RefSwitch(sha=sha, path=path)


def repository_ref_label(
    *, repository: Repository, ref: str, sha: str, refs: dict[str, list[str]]
) -> str:
    """The branch or tag the browser shows as chosen at `sha`: `ref` (the default branch when
    empty) if it is one of `refs` and still points at `sha`, else "" (a bare commit).

    A branch that moved on since its link was made is not named, so a label never lies.
    """
    ref = ref or repository.default_branch
    if ref not in refs["branches"] and ref not in refs["tags"]:
        return ""
    try:
        return ref if repository_resolve_commit(repository=repository, ref=ref) == sha else ""
    except ApplicationError:
        return ""


COMMIT_SUMMARY_SECONDS = 7 * 24 * 3600
# A page waits this long at most for the pinned commit's message.
COMMIT_READ_SECONDS = 5.0


def commit_summary_cache_key(*, repository_id: int, sha: str) -> str:
    return f"repos:commit:v1:{repository_id}:{sha}"


def repository_commit_summary(*, repository: Repository, sha: str) -> git_client.CommitInfo | None:
    """The pinned commit's subject and date, cached (a commit never changes), or None when git
    cannot read it: a page then shows the bare sha rather than failing.

    Failures are not cached, so a clone that comes back is read on the next page view.
    """
    key = commit_summary_cache_key(repository_id=repository.pk, sha=sha)
    cached = cache.get(key)
    if cached is not None:
        return git_client.CommitInfo(**cached)
    if not repository.is_ready:
        return None
    try:
        info = git_client.commit_info(
            repository_cache_path(repository),
            sha,
            allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES,
            timeout=COMMIT_READ_SECONDS,
        )
    except (git_client.GitError, OSError) as exc:
        logger.warning("commit %s of %s unreadable: %s", sha, repository, exc)
        return None
    cache.set(key, asdict(info), COMMIT_SUMMARY_SECONDS)
    return info


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


def repository_paths(
    *, repository: Repository, sha: str, timeout: float = git_client.READ_TIMEOUT_SECONDS
) -> list[str]:
    """Every file path at `sha` (no blob is read).

    Raises GitTimeout, which says reading the repository took too long, past `timeout` s.
    """
    return git_client.list_paths(
        repository_cache_path(repository),
        sha,
        allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES,
        timeout=timeout,
    )


def repository_context(
    *,
    repository: Repository,
    sha: str,
    wanted: list[str] | None = None,
    budget_bytes: int = 60_000,
    paths: list[str] | None = None,
    budget_seconds: float | None = None,
) -> RepoContext:
    """The file list at `sha` and the contents of the most relevant text files within a budget
    of bytes and of time (`budget_seconds`, MARLIN_REPO_CONTEXT_SECONDS by default).

    Files named in `wanted` come first, then READMEs, then other text files in tree order.
    When the time runs out, reading stops with the files read so far and `note` says so.
    Raises GitTimeout when not even the file list could be read in time.
    """
    seconds = settings.MARLIN_REPO_CONTEXT_SECONDS if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + seconds
    if paths is None:
        paths = repository_paths(repository=repository, sha=sha, timeout=seconds)
    known = set(paths)
    # String operations, not Path objects: a tree can hold 100k paths.
    readmes = [p for p in paths if p.rpartition("/")[2].lower().startswith("readme")]
    texts = [p for p in paths if os.path.splitext(p)[1].lower() in _TEXT_SUFFIXES]
    ordered = [p for p in dict.fromkeys([*(wanted or []), *readmes, *texts]) if p in known]
    context = RepoContext(paths=paths)
    read = git_client.read_files(
        repository_cache_path(repository),
        sha,
        ordered,
        allowed_bases=settings.MARLIN_GIT_ALLOWED_BASES,
        budget_bytes=budget_bytes,
        deadline=deadline,
    )
    for path, data in read.files.items():
        context.files[path] = data.decode("utf-8", errors="replace")
    if read.timed_out:
        context.note = (
            f"Reading the repository's files stopped after its {seconds:g} s time budget "
            f"(MARLIN_REPO_CONTEXT_SECONDS): {len(context.files)} files were read, "
            f"{read.unread} more were not."
        )
        logger.warning("context of %s at %s: %s", repository, sha, context.note)
    return context
