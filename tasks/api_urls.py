from django.urls import path

from tasks import api

urlpatterns = [
    path("projects/", api.ProjectListApi.as_view(), name="api-projects"),
    path("tasks/", api.TaskListCreateApi.as_view(), name="api-tasks"),
    path("tasks/<int:pk>/", api.TaskDetailApi.as_view(), name="api-task"),
    path("tasks/<int:pk>/submit/", api.TaskSubmitApi.as_view(), name="api-task-submit"),
    path("tasks/<int:pk>/follow-up/", api.TaskFollowUpApi.as_view(), name="api-task-follow-up"),
    path("tasks/<int:pk>/revise/", api.TaskReviseApi.as_view(), name="api-task-revise"),
    path("candidates/<int:pk>/retry/", api.CandidateRetryApi.as_view(), name="api-candidate-retry"),
    path(
        "candidates/<int:pk>/evidence/retry/",
        api.CandidateEvidenceRetryApi.as_view(),
        name="api-candidate-evidence-retry",
    ),
    path(
        "candidates/<int:pk>/regenerate/",
        api.CandidateRegenerateApi.as_view(),
        name="api-candidate-regenerate",
    ),
]
