from django.contrib import admin

from reviews.models import Review
from tasks.admin import ReadOnlyAdmin


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    list_display = ["task", "round", "reviewer", "decision", "created_at"]
    list_filter = ["decision"]
