from django.urls import path

from reviews import audit_views, comment_views, judging_views, views

app_name = "reviews"
urlpatterns = [
    path("", views.review_queue, name="queue"),
    path("tasks/<int:pk>/", views.review_detail, name="detail"),
    path("tasks/<int:pk>/claim/", views.review_claim, name="claim"),
    path("tasks/<int:pk>/release/", views.review_release, name="release"),
    path("tasks/<int:pk>/decide/", views.review_decide, name="decide"),
    path("audits/", audit_views.audit_queue, name="audits"),
    path("audits/<int:pk>/", audit_views.audit_detail, name="audit_detail"),
    path("audits/<int:pk>/take/", audit_views.audit_take, name="audit_take"),
    path("audits/<int:pk>/decide/", audit_views.audit_decide, name="audit_decide"),
    path(
        "candidates/<int:pk>/line-comments/",
        comment_views.line_comment_add,
        name="line_comment_add",
    ),
    path(
        "line-comments/<int:pk>/delete/",
        comment_views.line_comment_delete,
        name="line_comment_delete",
    ),
    path("judging/", judging_views.judging_list, name="judging"),
    path("judging/next/", judging_views.judging_next, name="judging_next"),
    path("judging/<int:pk>/", judging_views.judging_detail, name="judging_detail"),
    path(
        "judging/<int:pk>/heartbeat/",
        judging_views.judging_heartbeat,
        name="judging_heartbeat",
    ),
    path("earnings/", views.my_earnings, name="earnings"),
    path("payouts/", views.payouts, name="payouts"),
    path("metrics/", views.reviewer_metrics, name="metrics"),
    path("dashboard/", views.dashboard_page, name="dashboard"),
    path("notifications/", views.notification_list, name="notifications"),
    path("notifications/read/", views.notifications_read, name="notifications_read"),
    path("export/", views.export, name="export"),
    path("export/<int:pk>/", views.export_job, name="export_job"),
    path("export/<int:pk>/download/", views.export_download, name="export_download"),
]
