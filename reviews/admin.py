from django import forms
from django.contrib import admin

from marlin.exceptions import ApplicationError
from reviews import quality_gold
from reviews.models import (
    Earning,
    GoldTurn,
    JudgingTask,
    Review,
    ReviewAudit,
    ReviewClaim,
    SubmissionFlag,
)
from tasks.admin import ReadOnlyAdmin


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    list_display = ["task", "round", "reviewer", "decision", "rejects_task", "created_at"]
    list_filter = ["decision"]


@admin.register(ReviewClaim)
class ReviewClaimAdmin(ReadOnlyAdmin):
    list_display = ["task", "round", "reviewer", "claimed_at", "expires_at", "ending"]
    list_filter = ["ending"]


@admin.register(Earning)
class EarningAdmin(ReadOnlyAdmin):
    list_display = ["task", "contractor", "amount", "rate", "capped", "earned_at"]
    list_filter = ["capped"]


class GoldTurnForm(forms.ModelForm):
    class Meta:
        model = GoldTurn
        fields = ["turn", "expected", "score_ranges", "is_active"]
        help_texts = {
            "expected": "In the turn's own slots.",
            "score_ranges": 'Tolerated scores, e.g. {"A": {"correctness": [4, 5]}}; an axis left '
            "out accepts any score.",
        }

    def clean(self) -> dict:
        data = super().clean()
        if self.instance.pk is None and data.get("turn") is not None:
            try:
                data["score_ranges"] = quality_gold.gold_turn_check(
                    turn=data["turn"],
                    expected=data.get("expected"),
                    score_ranges=data.get("score_ranges"),
                )
            except ApplicationError as exc:
                raise forms.ValidationError(exc.message) from exc
        return data


@admin.register(GoldTurn)
class GoldTurnAdmin(admin.ModelAdmin):
    """Mark an accepted turn gold; afterwards only retiring it (is_active) is a change."""

    form = GoldTurnForm
    list_display = ["turn", "expected", "is_active", "created_by", "created_at"]
    list_filter = ["is_active", "turn__task__project"]
    raw_id_fields = ["turn"]

    def get_readonly_fields(self, request, obj=None):
        return ["turn", "expected", "score_ranges"] if obj is not None else []

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # graded judging tasks point at it


@admin.register(JudgingTask)
class JudgingTaskAdmin(ReadOnlyAdmin):
    list_display = ["pk", "project", "turn", "contractor", "status", "gold", "swapped", "earned"]
    list_filter = ["status", "project"]


@admin.register(SubmissionFlag)
class SubmissionFlagAdmin(ReadOnlyAdmin):
    list_display = ["submission", "kind", "detail", "created_at"]
    list_filter = ["kind"]


@admin.register(ReviewAudit)
class ReviewAuditAdmin(ReadOnlyAdmin):
    list_display = ["review", "auditor", "status", "decided_at"]
    list_filter = ["status"]
