from django.urls import path

from reviews import api, audit_api, comment_api, judging_api

urlpatterns = [
    path("reviews/queue/", api.ReviewQueueApi.as_view(), name="api-review-queue"),
    path("reviews/tasks/<int:pk>/", api.ReviewTaskApi.as_view(), name="api-review-task"),
    path("reviews/tasks/<int:pk>/claim/", api.ReviewClaimApi.as_view(), name="api-review-claim"),
    path(
        "reviews/tasks/<int:pk>/release/",
        api.ReviewReleaseApi.as_view(),
        name="api-review-release",
    ),
    path("reviews/tasks/<int:pk>/decide/", api.ReviewDecideApi.as_view(), name="api-review-decide"),
    path("reviews/audits/", audit_api.AuditListApi.as_view(), name="api-audits"),
    path("reviews/audits/<int:pk>/take/", audit_api.AuditTakeApi.as_view(), name="api-audit-take"),
    path(
        "reviews/audits/<int:pk>/decide/",
        audit_api.AuditDecideApi.as_view(),
        name="api-audit-decide",
    ),
    path(
        "candidates/<int:pk>/line-comments/",
        comment_api.LineCommentListCreateApi.as_view(),
        name="api-line-comments",
    ),
    path(
        "line-comments/<int:pk>/",
        comment_api.LineCommentDeleteApi.as_view(),
        name="api-line-comment",
    ),
    path("judging-tasks/", judging_api.JudgingTaskListApi.as_view(), name="api-judging-tasks"),
    path(
        "judging-tasks/next/",
        judging_api.JudgingTaskNextApi.as_view(),
        name="api-judging-task-next",
    ),
    path(
        "judging-tasks/<int:pk>/",
        judging_api.JudgingTaskDetailApi.as_view(),
        name="api-judging-task",
    ),
    path(
        "judging-tasks/<int:pk>/submit/",
        judging_api.JudgingTaskSubmitApi.as_view(),
        name="api-judging-task-submit",
    ),
    path("earnings/", api.MyEarningsApi.as_view(), name="api-earnings"),
    path("payouts/", api.PayoutsApi.as_view(), name="api-payouts"),
    path("reviewer-metrics/", api.ReviewerMetricsApi.as_view(), name="api-reviewer-metrics"),
    path("notifications/", api.NotificationListApi.as_view(), name="api-notifications"),
    path("notifications/read/", api.NotificationsReadApi.as_view(), name="api-notifications-read"),
    path("dashboard/", api.DashboardApi.as_view(), name="api-dashboard"),
    path("exports/", api.ExportJobListCreateApi.as_view(), name="api-exports"),
    path("exports/<int:pk>/", api.ExportJobDetailApi.as_view(), name="api-export"),
    path(
        "exports/<int:pk>/download/",
        api.ExportJobDownloadApi.as_view(),
        name="api-export-download",
    ),
]
