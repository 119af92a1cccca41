from django.urls import path

from repos import views

app_name = "repos"
urlpatterns = [
    path("", views.repository_list, name="list"),
    path("<int:pk>/", views.repository_detail, name="detail"),
    path("<int:pk>/clone/", views.repository_clone, name="clone"),
    path("<int:pk>/status/", views.repository_status, name="status"),
]
