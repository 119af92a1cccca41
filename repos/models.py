from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F
from django.utils import timezone

from marlin.models import BaseModel
from marlin.state_machine import move

# Control characters, space and the characters that end or escape an attribute or a URL.
_NOT_IN_WEB_URL = re.compile(r'[\x00-\x20"<>\\`\x7f]')


def is_web_url(value: str) -> bool:
    """An http(s) address of a host, without credentials: the only links a page may carry.

    `javascript:`, `data:` and the like would run in our origin when clicked.
    """
    if not value or len(value) > 300 or _NOT_IN_WEB_URL.search(value):
        return False
    try:
        parts = urlsplit(value)
        has_credentials = parts.username is not None or parts.password is not None
        hostname = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return parts.scheme in {"http", "https"} and bool(hostname) and not has_credentials


# The columns search_text and topics_text are made of.
_SEARCHED_FIELDS = {"full_name", "description", "topics"}


class Repository(BaseModel):
    """A GitHub repository of the catalogue, and the state of its shared clone."""

    class CloneStatus(models.TextChoices):
        NOT_CLONED = "NOT_CLONED", "Not cloned"
        QUEUED = "QUEUED", "Queued"
        CLONING = "CLONING", "Cloning"
        READY = "READY", "Ready"
        FAILED = "FAILED", "Failed"

    full_name = models.CharField(max_length=140, unique=True)
    clone_url = models.CharField(max_length=300)
    html_url = models.CharField(max_length=300, blank=True)
    default_branch = models.CharField(max_length=255, default="main")
    language = models.CharField(max_length=64, blank=True, db_index=True)
    stars = models.PositiveIntegerField(default=0, db_index=True)
    description = models.TextField(blank=True)
    license = models.CharField(max_length=64, blank=True)
    topics = models.JSONField(default=list, blank=True)
    is_archived = models.BooleanField(default=False)
    size_kb = models.PositiveIntegerField(default=0)
    pushed_at = models.DateTimeField(null=True, blank=True)
    is_enabled = models.BooleanField(default=True, db_index=True)
    # None: no cap on the tasks that are open (not yet accepted) on this repository.
    max_open_tasks = models.PositiveIntegerField(null=True, blank=True)
    # Kept by the task services so "least used" sorts without counting 100k joins.
    task_count = models.PositiveIntegerField(default=0, db_index=True)
    # Lower-cased name, description and topics: one column for one trigram index.
    search_text = models.TextField(blank=True, editable=False)
    # " topic1 topic2 ": matches a whole topic with a LIKE on every database.
    topics_text = models.TextField(blank=True, editable=False)
    clone_status = models.CharField(
        max_length=16, choices=CloneStatus.choices, default=CloneStatus.NOT_CLONED, db_index=True
    )
    clone_error = models.TextField(blank=True)
    cloned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-stars", "full_name"]
        verbose_name_plural = "repositories"
        indexes = [
            models.Index(fields=["is_enabled", "-stars"], name="repo_enabled_stars"),
            models.Index(fields=["is_enabled", "language", "-stars"], name="repo_lang_stars"),
            models.Index(fields=["license"], name="repo_license"),
            # Serves the picker's "least used" order without sorting the whole catalogue.
            models.Index(
                fields=["is_enabled", "task_count", "-stars", "full_name"], name="repo_least_used"
            ),
        ]

    def __str__(self) -> str:
        return self.full_name

    @staticmethod
    def search_text_for(full_name: str, description: str, topics: list[str]) -> str:
        return " ".join([full_name, description, *topics]).lower()

    @staticmethod
    def topics_text_for(topics: list[str]) -> str:
        return f" {' '.join(t.lower() for t in topics)} " if topics else ""

    def save(self, *args, **kwargs) -> None:
        # The search columns are an index of this row's own columns, like auto_now: deriving
        # them here means no way of writing a row (seed, admin, API, factories) leaves them
        # stale. Bulk writes bypass save() and set them with the same two functions.
        self.search_text = self.search_text_for(self.full_name, self.description, self.topics or [])
        self.topics_text = self.topics_text_for(self.topics or [])
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and _SEARCHED_FIELDS & set(update_fields):
            kwargs["update_fields"] = {*update_fields, "search_text", "topics_text"}
        super().save(*args, **kwargs)

    def clean(self) -> None:
        super().clean()
        if self.html_url and not is_web_url(self.html_url):
            raise ValidationError(
                {"html_url": "Enter an http:// or https:// address, without a user name."}
            )

    @property
    def safe_html_url(self) -> str:
        """html_url if it is a web address, else "": rows stored before the check never link."""
        return self.html_url if is_web_url(self.html_url) else ""

    @property
    def owner(self) -> str:
        return self.full_name.split("/", 1)[0]

    @property
    def is_ready(self) -> bool:
        """The cache exists and can be read, even while a re-fetch is queued or running."""
        return self.cloned_at is not None

    def queue_clone(self) -> None:
        """Ask for a (re)clone; a READY repository is re-fetched to pick up new commits."""
        move(
            self,
            to=self.CloneStatus.QUEUED,
            field="clone_status",
            transitions=CLONE_TRANSITIONS,
            clone_error="",
        )

    def start_cloning(self) -> None:
        """Claim the queued clone for one worker; a second claim raises InvalidTransition."""
        move(self, to=self.CloneStatus.CLONING, field="clone_status", transitions=CLONE_TRANSITIONS)

    def finish_cloning(self, *, cloned_at) -> None:
        """CLONING → READY: the shared cache holds the repository as of `cloned_at`."""
        move(
            self,
            to=self.CloneStatus.READY,
            field="clone_status",
            transitions=CLONE_TRANSITIONS,
            cloned_at=cloned_at,
            clone_error="",
        )

    def fail_cloning(self, *, reason: str) -> None:
        """CLONING → FAILED with a reason a person can act on; a retry queues it again."""
        move(
            self,
            to=self.CloneStatus.FAILED,
            field="clone_status",
            transitions=CLONE_TRANSITIONS,
            clone_error=reason,
        )


_C = Repository.CloneStatus
CLONE_TRANSITIONS: dict[str, set[str]] = {
    _C.NOT_CLONED: {_C.QUEUED},
    _C.QUEUED: {_C.CLONING},
    _C.CLONING: {_C.READY, _C.FAILED},
    _C.READY: {_C.QUEUED},
    _C.FAILED: {_C.QUEUED},
}


def _import_storage():
    from django.core.files.storage import storages

    return storages["catalogue_imports"]


class CatalogueImport(BaseModel):
    """An uploaded catalogue file imported by a worker, with its progress.

    Each batch of rows commits together with the counts and the byte offset just past its
    last row (`bytes_read`), so an import whose worker died resumes there; upserts by
    full_name make re-reading a batch harmless.
    """

    class Status(models.TextChoices):
        QUEUED = "QUEUED", "Queued"
        RUNNING = "RUNNING", "Importing"
        SUCCEEDED = "SUCCEEDED", "Imported"
        FAILED = "FAILED", "Failed"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="catalogue_imports",
    )
    filename = models.CharField(max_length=255)
    # Deleted once the import has succeeded; kept after a failure so it can be resumed.
    file = models.FileField(storage=_import_storage, max_length=300, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    # Committed progress: everything up to bytes_read / line is in the catalogue.
    bytes_read = models.PositiveBigIntegerField(default=0)
    line = models.PositiveIntegerField(default=0)
    rows_read = models.PositiveIntegerField(default=0)
    rows_created = models.PositiveIntegerField(default=0)
    rows_updated = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    # The first rejected rows as [line, reason]; rows_rejected counts them all.
    rejections = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    # The broker's id of the job that claimed the row: only its redelivery may take it over.
    job_id = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Catalogue import {self.pk} ({self.filename})"

    @property
    def rows_imported(self) -> int:
        return self.rows_created + self.rows_updated

    @property
    def percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        if not self.size_bytes:
            return 0
        return min(100, int(100 * self.bytes_read / self.size_bytes))

    @property
    def is_terminal(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    def claim(self, *, job_id: str) -> None:
        """QUEUED → RUNNING for one job; the same job redelivered (its worker died) takes
        over its own RUNNING row and goes on from the committed offset."""
        now = timezone.now()
        if self.status == self.Status.RUNNING and job_id and self.job_id == job_id:
            # Guarded by status and job id: an import resumed under another job (or finished)
            # since this copy was read is not taken over; move() below refuses it.
            matched = CatalogueImport.objects.filter(
                pk=self.pk, status=self.Status.RUNNING, job_id=job_id
            ).update(attempts=F("attempts") + 1, updated_at=now)
            if matched == 1:
                self.refresh_from_db()
                return
        move(
            self,
            to=self.Status.RUNNING,
            transitions=CATALOGUE_IMPORT_TRANSITIONS,
            job_id=job_id,
            attempts=self.attempts + 1,
            started_at=self.started_at or now,
            error="",
        )

    def succeed(self) -> None:
        """RUNNING → SUCCEEDED; the counts were written batch by batch."""
        move(
            self,
            to=self.Status.SUCCEEDED,
            transitions=CATALOGUE_IMPORT_TRANSITIONS,
            finished_at=timezone.now(),
        )

    def fail(self, *, reason: str) -> None:
        """QUEUED or RUNNING → FAILED with a reason a person can act on."""
        move(
            self,
            to=self.Status.FAILED,
            transitions=CATALOGUE_IMPORT_TRANSITIONS,
            error=reason,
            finished_at=timezone.now(),
        )

    def requeue(self, *, from_start: bool) -> None:
        """FAILED, or RUNNING with its worker gone → QUEUED: resume at the committed offset,
        or (from_start) read the whole file again, counts reset."""
        restart = (
            {"bytes_read": 0, "line": 0, "rows_read": 0, "rows_created": 0,
             "rows_updated": 0, "rows_rejected": 0, "rejections": []}
            if from_start else {}
        )  # fmt: skip
        move(
            self,
            to=self.Status.QUEUED,
            transitions=CATALOGUE_IMPORT_TRANSITIONS,
            job_id="",
            error="",
            finished_at=None,
            **restart,
        )


_I = CatalogueImport.Status
CATALOGUE_IMPORT_TRANSITIONS: dict[str, set[str]] = {
    _I.QUEUED: {_I.RUNNING, _I.FAILED},
    _I.RUNNING: {_I.SUCCEEDED, _I.FAILED, _I.QUEUED},
    _I.SUCCEEDED: set(),
    _I.FAILED: {_I.QUEUED},
}
