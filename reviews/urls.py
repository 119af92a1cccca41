from django.urls import path

from reviews import views

app_name = "reviews"
urlpatterns = [
    path("", views.review_queue, name="queue"),
    path("tasks/<int:pk>/", views.review_detail, name="detail"),
    path("tasks/<int:pk>/decide/", views.review_decide, name="decide"),
    path("export/", views.export, name="export"),
]
