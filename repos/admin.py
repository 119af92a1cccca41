from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path

from marlin.exceptions import ApplicationError
from repos import services
from repos.forms import RepositoryImportForm
from repos.models import Repository

_REJECTIONS_SHOWN = 50


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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

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
        if not (
            self.has_change_permission(request) and request.user.has_perm("repos.add_repository")
        ):
            return redirect("admin:index")
        form = RepositoryImportForm(request.POST or None, request.FILES or None)
        report = None
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                report = services.repository_import(content=upload.read(), filename=upload.name)
            except ApplicationError as exc:
                form.add_error("file", exc.message)
            else:
                level = messages.WARNING if report.rejected else messages.SUCCESS
                self.message_user(
                    request,
                    f"Imported {report.imported} repositories ({report.created} new, "
                    f"{report.updated} updated); rejected {len(report.rejected)} rows.",
                    level,
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import repositories",
            "form": form,
            "report": report,
            "rejections": report.rejected[:_REJECTIONS_SHOWN] if report else [],
        }
        return render(request, "admin/repos/repository/import.html", context)
