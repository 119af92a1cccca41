from django.urls import path

from repos import api

urlpatterns = [
    path("repos/import/", api.RepositoryImportApi.as_view(), name="api-repos-import"),
    path(
        "repos/imports/<int:pk>/",
        api.RepositoryImportDetailApi.as_view(),
        name="api-repos-import-job",
    ),
    path("repositories/", api.RepositoryListApi.as_view(), name="api-repositories"),
    path("repositories/<int:pk>/", api.RepositoryDetailApi.as_view(), name="api-repository"),
    path(
        "repositories/<int:pk>/clone/",
        api.RepositoryCloneApi.as_view(),
        name="api-repository-clone",
    ),
    path(
        "repositories/<int:pk>/refs/", api.RepositoryRefsApi.as_view(), name="api-repository-refs"
    ),
    path(
        "repositories/<int:pk>/tree/", api.RepositoryTreeApi.as_view(), name="api-repository-tree"
    ),
]
