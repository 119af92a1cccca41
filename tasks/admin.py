from django import forms
from django.contrib import admin, messages

from tasks.models import Candidate, Judgement, ModelEndpoint, Project, Task, TaskEvent, Turn


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records that are appended by the workflow and never edited by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ModelEndpoint)
class ModelEndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "provider", "model_id", "is_enabled"]
    list_filter = ["provider", "is_enabled"]
    search_fields = ["name", "model_id"]


PAY_HELP = (
    "What each accepted task earns the contractor. 0 means the work on this project is unpaid: "
    "set it on purpose."
)


class ProjectAdminForm(forms.ModelForm):
    """A new project starts with no pay filled in: the model's 0 default would otherwise be
    saved unnoticed and every accepted task would earn nothing."""

    class Meta:
        model = Project
        fields = "__all__"  # noqa: DJ007 - the admin shows every field of a project
        help_texts = {"pay_per_task": PAY_HELP}
        error_messages = {
            "pay_per_task": {"required": "Set the pay per task (0 only for unpaid work)."}
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance._state.adding:
            self.fields["pay_per_task"].initial = None


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    form = ProjectAdminForm
    list_display = ["name", "endpoint_a", "endpoint_b", "pay_per_task", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name"]

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if obj.pay_per_task == 0:
            # Allowed (a pilot, internal staff), but rarely meant: say so after every save.
            self.message_user(
                request,
                f"“{obj.name}” pays $0 per task: contractors earn nothing for accepted work. "
                "Set the pay per task unless that is intended.",
                level=messages.WARNING,
            )


class TaskEventInline(admin.TabularInline):
    model = TaskEvent
    extra = 0
    can_delete = False
    readonly_fields = ["kind", "from_status", "to_status", "actor", "reason", "created_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "title",
        "project",
        "repository",
        "contractor",
        "status",
        "round",
        "created_at",
    ]
    list_filter = ["status", "kind", "project"]
    search_fields = ["title", "repository__full_name", "contractor__username"]
    raw_id_fields = ["repository", "contractor"]
    # Who did the work, on what, and its history are facts: never edited after the event.
    readonly_fields = [
        "project", "repository", "contractor", "base_ref", "commit_sha", "status", "round",
        "submitted_at", "accepted_at",
    ]  # fmt: skip
    inlines = [TaskEventInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Turn)
class TurnAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "number", "created_at"]
    raw_id_fields = ["task"]


@admin.register(Candidate)
class CandidateAdmin(admin.ModelAdmin):
    list_display = ["id", "turn", "slot", "endpoint", "status", "attempts", "finished_at"]
    list_filter = ["status", "slot", "endpoint"]
    raw_id_fields = ["turn"]
    # failure_detail: the HTTP status, exit code or stderr tail the contractor does not see.
    readonly_fields = ["status", "error", "failure_detail", "started_at", "finished_at", "attempts"]


@admin.register(Judgement)
class JudgementAdmin(ReadOnlyAdmin):
    list_display = ["id", "turn", "round", "preference", "created_at"]
    list_filter = ["preference"]


@admin.register(TaskEvent)
class TaskEventAdmin(ReadOnlyAdmin):
    list_display = ["task", "from_status", "to_status", "actor", "created_at"]
    list_filter = ["to_status"]
