from django.urls import path

from tasks import diff_views, views

app_name = "tasks"
urlpatterns = [
    path("", views.task_list, name="list"),
    path("new/", views.task_create, name="create"),
    path("new/guidelines/", views.project_guidelines, name="project_guidelines"),
    path("<int:pk>/", views.task_detail, name="detail"),
    path("<int:pk>/candidates/", views.task_candidates, name="candidates"),
    path("<int:pk>/submit/", views.task_submit, name="submit"),
    path("<int:pk>/revise/", views.task_revise, name="revise"),
    path("<int:pk>/draft/", views.task_draft, name="draft"),
    path("<int:pk>/heartbeat/", views.task_heartbeat, name="heartbeat"),
    path("candidates/<int:pk>/retry/", views.candidate_retry, name="candidate_retry"),
    path(
        "candidates/<int:pk>/regenerate/",
        views.candidate_regenerate,
        name="candidate_regenerate",
    ),
    path(
        "candidates/<int:pk>/files/<int:index>/",
        views.candidate_diff_file,
        name="candidate_diff_file",
    ),
    path("candidates/<int:pk>/evidence/", views.candidate_evidence, name="candidate_evidence"),
    path(
        "candidates/<int:pk>/evidence/log/",
        views.candidate_evidence_log,
        name="candidate_evidence_log",
    ),
    path(
        "candidates/<int:pk>/evidence/retry/",
        views.candidate_evidence_retry,
        name="candidate_evidence_retry",
    ),
    path("candidates/<int:pk>/diff/", diff_views.candidate_diff, name="candidate_diff"),
    path("candidates/<int:pk>/context/", diff_views.candidate_context, name="candidate_context"),
    path("turns/<int:turn_pk>/ab-diff/", diff_views.turn_ab_diff_view, name="turn_ab_diff"),
]
