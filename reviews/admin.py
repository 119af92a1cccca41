from django.contrib import admin

from reviews.models import Earning, Review, ReviewClaim
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
