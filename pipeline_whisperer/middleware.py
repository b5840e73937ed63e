"""Request-level guards that must run before any view reads the body, and the request's
correlation id and access log line."""

import logging
import re
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from pipeline_whisperer.correlation import correlation_scope
from pipeline_whisperer.exceptions import problem_response
from pipeline_whisperer.logging import ACCESS_LOGGER, request_log_scope

access_logger = logging.getLogger(ACCESS_LOGGER)

# Letters, digits and - _ . : up to 100 characters: enough for UUIDs and trace ids, nothing that
# could smuggle a header or a log line.
_WELL_FORMED_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


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


class CorrelationIdMiddleware:
    """Bind the request's correlation id for everything it causes, echo it back, and write the
    request's one access log line.

    A well-formed `X-Request-ID` from the caller (or the proxy in front) is kept, so one id
    follows a request across systems; anything else is replaced by a fresh UUID. Every log line
    written during the request carries the id, method, path and API key name (see
    `pipeline_whisperer.logging`). Must be the first middleware, so that its line is the last.
    """

    header = "X-Request-ID"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        started = time.monotonic()
        with (
            correlation_scope(incoming if _WELL_FORMED_ID.fullmatch(incoming) else "") as correlation_id,
            request_log_scope(method=request.method or "", path=request.path),
        ):
            request.correlation_id = correlation_id  # type: ignore[attr-defined]
            response = self.get_response(request)
            response[self.header] = correlation_id
            _log_access(request, response, duration_ms=(time.monotonic() - started) * 1000)
        return response


def _log_access(request: HttpRequest, response: HttpResponse, *, duration_ms: float) -> None:
    """The request's access line, inside its context; it replaces Django's `django.request`
    4xx/5xx warning, which Django writes after this middleware returned (without the id)."""
    status = response.status_code
    level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
    fields = {"status": status, "duration_ms": round(duration_ms, 1)}
    access_logger.log(
        level, "%s %s %s %s ms", request.method, request.path, status, fields["duration_ms"], extra=fields
    )
    response._has_been_logged = True  # type: ignore[attr-defined]
