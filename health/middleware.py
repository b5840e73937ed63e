"""Liveness answered ahead of the middleware stack."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from health.views import liveness

LIVENESS_PATH = "/health/liveness"


class LivenessMiddleware:
    """Answer `/health/liveness` before any other middleware runs.

    Liveness says only that the process serves requests, so nothing else needs to run: it stays
    about as cheap as a bare WSGI callable under load, and answers whatever Host header a
    kubelet or load balancer sends (ALLOWED_HOSTS is checked further down the stack). First in
    MIDDLEWARE.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == LIVENESS_PATH:
            return liveness(request)
        return self.get_response(request)
