from django.contrib import admin

from repos.models import Repository


@admin.register(Repository)
class RepositoryAdmin(admin.ModelAdmin):
    list_display = ["full_name", "language", "stars", "clone_status", "is_enabled", "updated_at"]
    list_filter = ["clone_status", "is_enabled", "language"]
    search_fields = ["full_name", "description"]
    readonly_fields = ["clone_status", "clone_error", "cloned_at", "created_at", "updated_at"]
