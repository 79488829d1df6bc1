from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularSwaggerSplitView

from trials import views as trial_views

from . import health, metrics, views
from .schema_cache import SchemaView

urlpatterns = [
    path("", trial_views.home, name="home"),
    path("inbox/", trial_views.inbox, name="inbox"),
    path("accounts/", include("ctims.account_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    # Generated once per language and process, not at every request (ctims.schema_cache).
    path("api/schema/", SchemaView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's initialiser as a script of its own (?script): no inline script, so the
    # strict content security policy holds on the docs page too.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api/swagger_ui.html"),
        name="api-docs",
    ),
    path("api/", views.api_root, name="api-root"),
    path("api/", include("trials.api.urls")),
    path("api/", include("reads.api_urls")),
    path("dicomweb/", include("trials.dicomweb.urls")),
    path("dicomweb/", include("reads.dicomweb")),
    path("trials/", include("trials.urls")),
    path("reads/", include("reads.urls")),
    path("operator/", admin.site.urls),
    path("health/", views.health, name="health"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
]

handler404 = views.not_found
