from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages

from tasks import evidence, evidence_sandbox, pool
from tasks.models import (
    Candidate,
    CheckRecipe,
    EvidenceRun,
    Judgement,
    ModelEndpoint,
    Project,
    ProjectEndpoint,
    Task,
    TaskEvent,
    Turn,
)


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


class ProjectEndpointInline(admin.TabularInline):
    """The pool. Rows are retired (unticked), never deleted: the leaderboard keeps them."""

    model = ProjectEndpoint
    extra = 1
    can_delete = False
    fields = ["endpoint", "weight", "is_enabled", "draw_state"]
    readonly_fields = ["draw_state"]
    verbose_name = "endpoint in the pool"
    verbose_name_plural = "pool of endpoints (untick “is enabled” to retire one)"

    @admin.display(description="now")
    def draw_state(self, row: ProjectEndpoint) -> str:
        if row.pk is None:
            return "—"
        states = {e.endpoint.pk: e.state for e in pool.pool_entries(row.project)}
        return states.get(row.endpoint_id, "—")


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    form = ProjectAdminForm
    list_display = ["name", "pool_summary", "pair_sampling", "pay_per_task", "is_active"]
    list_filter = ["is_active", "pair_sampling"]
    search_fields = ["name"]
    inlines = [ProjectEndpointInline]

    @admin.display(description="pool")
    def pool_summary(self, project: Project) -> str:
        return pool.pool_summary(pool.pool_entries(project))

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
        "submitted_at", "accepted_at", "first_endpoint", "second_endpoint",
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


class IndentedJSONField(forms.JSONField):
    """JSON shown indented, one command or check a line or so: a recipe is edited by hand."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)


def _json_widget(rows: int) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows, "cols": 100, "style": "font-family: monospace"})


class CheckRecipeAdminForm(forms.ModelForm):
    """The recipe's JSON fields as indented text; CheckRecipe.clean (evidence.recipe_errors)
    puts each problem under its field."""

    setup_commands = IndentedJSONField(
        required=False,
        widget=_json_widget(6),
        help_text='Argument lists run in order with the network on, e.g. [["python", "-m", '
        '"venv", "{env}/venv"], ["{env}/venv/bin/pip", "install", "-e", ".[test]"]]. Empty: '
        "no setup. Cached per repository, commit and setup.",
    )
    checks = IndentedJSONField(
        widget=_json_widget(12),
        help_text='Up to 8 of {"name": "tests", "command": ["python", "-m", "pytest", "-q", '
        '"--junitxml={report}"], "kind": "tests" | "findings" | "status", "timeout_seconds": '
        f"300}} (at most {evidence.MAX_CHECK_SECONDS}), run with no network. A shell line only "
        'as ["bash", "-c", "..."].',
    )
    acceptance_command = IndentedJSONField(
        widget=_json_widget(4),
        help_text="Runs the contractor's acceptance tests; {files} is where their paths go.",
    )

    class Meta:
        model = CheckRecipe
        fields = [
            "repository", "project", "setup_commands", "setup_timeout_seconds", "checks",
            "acceptance_command", "is_enabled",
        ]  # fmt: skip
        help_texts = {
            "setup_timeout_seconds": f"At most {evidence.MAX_SETUP_SECONDS} seconds.",
        }

    def clean_setup_commands(self) -> list:
        # An empty box means no setup, not "null".
        return self.cleaned_data["setup_commands"] or []


def _warn_if_evidence_is_off(request) -> bool:
    """Put why evidence cannot run on this server at the top of the page; True if it can."""
    reason = evidence_sandbox.availability()
    # On GET only: a POST redirects, and the next page says it again.
    if reason and request.method == "GET":
        messages.warning(request, f"{reason} Recipes are kept, but no check runs until then.")
    return reason is None


@admin.register(CheckRecipe)
class CheckRecipeAdmin(admin.ModelAdmin):
    form = CheckRecipeAdminForm
    list_display = ["repository", "project", "check_names", "is_enabled", "updated_at"]
    list_filter = ["is_enabled", "project"]
    search_fields = ["repository__full_name", "project__name"]
    list_select_related = ["repository", "project"]
    # The catalogue may hold thousands of repositories: no select of every one.
    raw_id_fields = ["repository"]

    @admin.display(description="Checks")
    def check_names(self, recipe: CheckRecipe) -> str:
        names = [c.get("name", "?") for c in recipe.checks if isinstance(c, dict)]
        return ", ".join(names) or "—"

    def changelist_view(self, request, extra_context=None):
        if _warn_if_evidence_is_off(request) and request.method == "GET":
            messages.info(request, "Evidence can run on this server: checks run under bubblewrap.")
        return super().changelist_view(request, extra_context)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        _warn_if_evidence_is_off(request)
        return super().changeform_view(request, object_id, form_url, extra_context)


@admin.register(EvidenceRun)
class EvidenceRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "task", "candidate", "status", "attempts", "error", "finished_at"]
    list_filter = ["status"]
    search_fields = ["task__title", "task__repository__full_name"]
    list_select_related = ["task", "candidate"]
    # failure_detail: the technical cause (a git error, a time limit) people are not shown.
    fields = [
        "task", "candidate", "base_run", "status", "error", "failure_detail", "recipe_digest",
        "key", "attempts", "job_id", "started_at", "finished_at",
    ]  # fmt: skip

    def changelist_view(self, request, extra_context=None):
        _warn_if_evidence_is_off(request)
        return super().changelist_view(request, extra_context)
