"""Top-level routes: the admin, the versioned API, its schema and docs, the unsubscribe page,
the email providers' webhooks, health and metrics."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from pipeline_whisperer.admin import login_lockouts
from pipeline_whisperer.api_edges import FALLBACK_URL_NAME, SwaggerDocsView, api_fallback

# The admin does not autodiscover at start-up (pipeline_whisperer.apps.AdminConfig): the apps'
# admin modules are imported here, by the first request, or by the admin's checks.
admin.autodiscover()

urlpatterns = [
    # Staff console dashboard (issue 6); before admin/ so the admin's catch-all does not take it.
    path("admin/console/", include("leads.console.urls")),
    path("admin/lockouts/", admin.site.admin_view(login_lockouts), name="login-lockouts"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("leads.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's init script as a file: the CSP needs no inline scripts.
    path("api/docs/", SwaggerDocsView.as_view(url_name="schema"), name="api-docs"),
    # Last under api/: a trailing slash the wrong way round is redirected, anything else a problem+json 404.
    re_path(r"^api/", api_fallback, name=FALLBACK_URL_NAME),
    # One-click unsubscribe (RFC 8058): public, the signed token in the URL is the credential.
    path("unsubscribe/", include("leads.unsubscribe.urls")),
    # Email providers' tracking and inbound webhooks (django-anymail, their own authentication).
    path("webhooks/", include("leads.webhooks.urls")),
    path("", include("health.urls")),
]

handler400 = "pipeline_whisperer.exceptions.handler400"
handler403 = "pipeline_whisperer.exceptions.handler403"
handler404 = "pipeline_whisperer.exceptions.handler404"
handler500 = "pipeline_whisperer.exceptions.handler500"
