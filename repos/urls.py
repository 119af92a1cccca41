from django.urls import path, re_path

from repos import views

app_name = "repos"
urlpatterns = [
    path("", views.repository_list, name="list"),
    path("refs/", views.repository_ref_options, name="ref_options"),
    path("<int:pk>/", views.repository_detail, name="detail"),
    path("<int:pk>/clone/", views.repository_clone, name="clone"),
    path("<int:pk>/status/", views.repository_status, name="status"),
    path("<int:pk>/browse/", views.repository_browse_ref, name="browse_ref"),
    re_path(
        # [\s\S]: git allows newlines in file names, and "." would not match them.
        r"^(?P<pk>[0-9]+)/browse/(?P<sha>[0-9a-f]{40})/(?P<path>[\s\S]*)$",
        views.repository_browse,
        name="browse",
    ),
]
