"""Request-level guards that must run before any view reads the body."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from pipeline_whisperer.exceptions import problem_response


class RequestBodyLimitMiddleware:
    """Answer 413 to a body over DATA_UPLOAD_MAX_MEMORY_SIZE.

    Django checks that limit only when `request.body` is read; DRF's parsers read the raw
    stream instead, so without this an API request could be of any size.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return problem_response(status=400, detail="Content-Length is not a number.", request=request)
        if limit is not None and length > limit:
            return problem_response(
                status=413, detail=f"The request body is {length} bytes; the limit is {limit}.", request=request
            )
        return self.get_response(request)
