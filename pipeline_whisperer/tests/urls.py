"""The project's routes plus views that fail or log on purpose, for the observability tests."""

import logging

from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pipeline_whisperer.urls import handler400, handler403, handler404, handler500
from pipeline_whisperer.urls import urlpatterns as project_urls

logger = logging.getLogger("pipeline_whisperer.tests")

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]


def failing_view(request: HttpRequest) -> HttpResponse:
    """Logs what the caller sent (as careless code might), then fails."""
    logger.warning("received query %s headers %s body %s", request.GET.dict(), dict(request.headers), request.body)
    raise RuntimeError(f"failed on {request.GET.urlencode()}")


def logging_view(request: HttpRequest) -> HttpResponse:
    logger.info("inside the view")
    return HttpResponse("ok")


class FailingApiView(APIView):
    def get(self, request: Request) -> Response:
        raise RuntimeError("an unexpected failure in an API view")


urlpatterns = [
    # Before the project's routes, whose last one under api/ answers every other path there.
    path("api/v1/test/fail", FailingApiView.as_view()),
    *project_urls,
    path("test/fail", failing_view),
    path("test/log", logging_view),
]
