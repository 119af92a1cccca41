from django.contrib import admin

from reviews.models import Review


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ["task", "round", "reviewer", "decision", "created_at"]
    list_filter = ["decision"]
    raw_id_fields = ["task"]
