from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.decorators.cache import cache_control
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from marlin import views

# Swagger UI and Redoc put inline <style> on their pages (Redoc at run time): allowed there
# only. Their scripts are our static files; the split Swagger view serves its setup script
# as a file too, so script-src stays strict everywhere.
_api_docs_csp = csp_update({"style-src": [UNSAFE_INLINE], "worker-src": ["blob:"]})


# Browsers ask for /favicon.ico whatever the page links, and a 404 on every page fills logs
# and consoles. Not permanent: the static URL carries the file's hash, which changes with it.
# Outside ATOMIC_REQUESTS, so a database outage never turns the icon into a 500.
@transaction.non_atomic_requests
@cache_control(max_age=86400)
def favicon(request: HttpRequest) -> HttpResponse:
    return redirect(static("favicon.svg"))


urlpatterns = [
    path("", views.home, name="home"),
    path("favicon.ico", favicon, name="favicon"),
    path("health/", views.healthz, name="health"),  # the older name of /healthz
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("repos/", include("repos.urls")),
    path("tasks/", include("tasks.urls")),
    path("reviews/", include("reviews.urls")),
    path("api/admin/", include("marlin.admin_api_urls")),
    path("api/", include("repos.api_urls")),
    path("api/", include("tasks.api_urls")),
    path("api/", include("reviews.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/docs/",
        _api_docs_csp(SpectacularSwaggerSplitView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path(
        "api/redoc/",
        _api_docs_csp(SpectacularRedocView.as_view(url_name="api-schema")),
        name="api-redoc",
    ),
    path("admin/", admin.site.urls),
]
