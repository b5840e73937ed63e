"""What answers at the API's edges: a path under /api/ that no route takes, and the docs page
opened in a browser that is not signed in.

- A route asked with its trailing slash the wrong way round (`/api/v1/leads/`, `/api/schema`)
  is redirected permanently to the one that exists with 308, so a POST keeps its method and body.
- Anything else under /api/ is a problem+json 404, even under debug (Django's debug 404 page
  is HTML and is shown whatever `handler404` says).
- /api/docs/ without a session or a key sends the browser to the admin's login and back (?next=);
  a key that is wrong is still a 401, a user who is not staff still a 403.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.urls import Resolver404, resolve, reverse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework.exceptions import NotAuthenticated

from pipeline_whisperer.exceptions import problem_response

FALLBACK_URL_NAME = "api-fallback"


@csrf_exempt  # it changes nothing: a POST is only redirected or refused
def api_fallback(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    path = request.path_info
    other = path.rstrip("/") if path.endswith("/") else path + "/"
    if _is_route(other):
        query = request.META.get("QUERY_STRING", "")
        location = request.META.get("SCRIPT_NAME", "") + other + (f"?{query}" if query else "")
        return HttpResponsePermanentRedirect(location, preserve_request=True)
    return problem_response(status=404, detail="No resource at this address.", request=request)


def _is_route(path: str) -> bool:
    try:
        return resolve(path).url_name != FALLBACK_URL_NAME
    except Resolver404:
        return False


class SwaggerDocsView(SpectacularSwaggerSplitView):
    """Swagger UI (and its init script), with the admin's login for a caller with no credentials."""

    def handle_exception(self, exc: Exception) -> HttpResponse:  # type: ignore[override]  # DRF takes any response
        if isinstance(exc, NotAuthenticated):
            return redirect_to_login(self.request.get_full_path(), login_url=reverse("admin:login"))
        return super().handle_exception(exc)
