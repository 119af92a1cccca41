from django.urls import path

from reviews import api, comment_api

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
