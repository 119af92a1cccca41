from django.urls import include, path
from rest_framework.routers import SimpleRouter

from marlin.admin_api import UserViewSet
from repos.api import RepositoryAdminApi
from tasks.admin_api import (
    CheckRecipeViewSet,
    ModelEndpointViewSet,
    ProjectAdminViewSet,
    ProjectEndpointViewSet,
)

router = SimpleRouter()
router.register("endpoints", ModelEndpointViewSet, basename="api-admin-endpoint")
router.register("projects", ProjectAdminViewSet, basename="api-admin-project")
router.register("project-endpoints", ProjectEndpointViewSet, basename="api-admin-project-endpoint")
router.register("users", UserViewSet, basename="api-admin-user")
router.register("check-recipes", CheckRecipeViewSet, basename="api-admin-check-recipe")

urlpatterns = [
    path("", include(router.urls)),
    path("repositories/<int:pk>/", RepositoryAdminApi.as_view(), name="api-admin-repository"),
]
