from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.html import format_html, format_html_join

from marlin.exceptions import ApplicationError
from repos import catalogue_imports, services
from repos.forms import RepositoryAddForm, RepositoryImportForm
from repos.models import CatalogueImport, Repository


@admin.register(Repository)
class RepositoryAdmin(admin.ModelAdmin):
    list_display = [
        "full_name", "language", "stars", "task_count", "max_open_tasks", "clone_status",
        "is_enabled", "updated_at",
    ]  # fmt: skip
    list_editable = ["max_open_tasks", "is_enabled"]
    list_filter = ["is_enabled", "clone_status", "is_archived", "language"]
    search_fields = ["full_name"]
    # The import is the source of truth for catalogue data; admins steer availability.
    readonly_fields = [
        "full_name", "clone_url", "html_url", "default_branch", "language", "stars",
        "description", "license", "topics", "is_archived", "size_kb", "pushed_at",
        "task_count", "clone_status", "clone_error", "cloned_at", "created_at", "updated_at",
    ]  # fmt: skip
    actions = ["enable", "disable"]
    change_list_template = "admin/repos/repository/change_list.html"

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context=None
    ) -> HttpResponse:
        """Add one repository by its clone URL (an internal git server too) and queue its
        clone; the catalogue fields are then read-only like an imported row's."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        bases = settings.MARLIN_GIT_ALLOWED_BASES
        form = RepositoryAddForm(request.POST or None, allowed_bases=bases)
        if request.method == "POST" and form.is_valid():
            try:
                repository = services.repository_add(**form.cleaned_data)
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(
                    request, f"{repository} was added; its clone is queued.", messages.SUCCESS
                )
                return redirect("admin:repos_repository_change", repository.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Add repository",
            "form": form,
            "allowed_bases": bases,
        }
        status = 400 if form.errors else 200
        return render(request, "admin/repos/repository/add.html", context, status=status)

    @admin.action(description="Offer for new tasks", permissions=["change"])
    def enable(self, request: HttpRequest, queryset) -> None:
        count = services.repository_set_enabled(repositories=queryset, enabled=True)
        self.message_user(request, f"{count} repositories are offered for new tasks.")

    @admin.action(description="Withdraw from new tasks", permissions=["change"])
    def disable(self, request: HttpRequest, queryset) -> None:
        count = services.repository_set_enabled(repositories=queryset, enabled=False)
        self.message_user(request, f"{count} repositories are withdrawn from new tasks.")

    def get_urls(self):
        extra = [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="repos_repository_import",
            )
        ]
        return extra + super().get_urls()

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not can_import(request):
            return redirect("admin:index")
        form = RepositoryImportForm(request.POST or None, request.FILES or None)
        rejections: list[dict] = []
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                job = catalogue_imports.catalogue_import_start(
                    by=request.user, upload=upload, filename=upload.name
                )
            except ApplicationError as exc:
                form.add_error("file", exc.message)
                rejections = exc.extra.get("rejected", [])
            else:
                self.message_user(
                    request, f"{job.filename} is being imported in the background.", messages.INFO
                )
                return redirect("admin:repos_catalogueimport_change", job.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import repositories",
            "form": form,
            "rejections": rejections,
            "recent": CatalogueImport.objects.all()[:5],
        }
        status = 400 if form.errors else 200
        return render(request, "admin/repos/repository/import.html", context, status=status)


def can_import(request: HttpRequest) -> bool:
    """Importing adds and overwrites rows: both permissions, as the API asks."""
    return request.user.has_perms(["repos.add_repository", "repos.change_repository"])


@admin.register(CatalogueImport)
class CatalogueImportAdmin(admin.ModelAdmin):
    """Uploaded catalogue files and their imports' progress (the page refreshes itself)."""

    list_display = [
        "id", "filename", "status", "progress", "rows_read", "rows_imported", "rows_rejected",
        "requested_by", "created_at",
    ]  # fmt: skip
    list_filter = ["status"]
    fields = [
        "filename", "status", "progress", "size_bytes", "bytes_read", "rows_read",
        "rows_created", "rows_updated", "rows_rejected", "error", "rejected_rows",
        "requested_by", "attempts", "created_at", "started_at", "finished_at", "updated_at",
    ]  # fmt: skip
    readonly_fields = fields
    actions = ["resume", "rerun"]
    change_form_template = "admin/repos/catalogueimport/change_form.html"

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_import(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return can_import(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # Nothing is edited here; the actions resume imports.
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_actions(self, request: HttpRequest):
        # The actions need no model permission of their own, only the import permissions.
        return super().get_actions(request) if can_import(request) else {}

    @admin.display(description="Progress")
    def progress(self, job: CatalogueImport) -> str:
        return f"{job.percent}% ({job.bytes_read:,} of {job.size_bytes:,} bytes)"

    @admin.display(description="Imported")
    def rows_imported(self, job: CatalogueImport) -> int:
        return job.rows_imported

    @admin.display(description="Rejected rows (first ones)")
    def rejected_rows(self, job: CatalogueImport) -> str:
        if not job.rejections:
            return "–"
        # Reasons quote the file's own text: escaped by format_html_join.
        return format_html(
            "<table><thead><tr><th>Line</th><th>Reason</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", job.rejections),
        )

    @admin.action(description="Resume (go on from the last imported batch)")
    def resume(self, request: HttpRequest, queryset) -> None:
        self._requeue(request, queryset, from_start=False)

    @admin.action(description="Import again from the start")
    def rerun(self, request: HttpRequest, queryset) -> None:
        self._requeue(request, queryset, from_start=True)

    def _requeue(self, request: HttpRequest, queryset, *, from_start: bool) -> None:
        for job in queryset:
            try:
                catalogue_imports.catalogue_import_resume(
                    catalogue_import=job, from_start=from_start
                )
            except ApplicationError as exc:
                self.message_user(request, f"{job}: {exc.message}", messages.WARNING)
            else:
                self.message_user(request, f"{job} is queued again.", messages.INFO)
