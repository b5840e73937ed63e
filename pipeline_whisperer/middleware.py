"""Request-level guards that must run before any view reads the body, liveness answered before
Django, the request's correlation id and access log line, and message storage made only when it
is used."""

import io
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

from pipeline_whisperer.correlation import correlation_scope
from pipeline_whisperer.exceptions import problem_response
from pipeline_whisperer.logging import ACCESS_LOGGER, request_log_scope

access_logger = logging.getLogger(ACCESS_LOGGER)

# Letters, digits and - _ . : up to 100 characters: enough for UUIDs and trace ids, nothing that
# could smuggle a header or a log line.
_WELL_FORMED_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


LIVENESS_PATH = "/health/liveness"
LIVE_BODY = b'{"status":"ok"}'
_LIVE_HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(LIVE_BODY)))]


class LivenessFirst:
    """Answer `/health/liveness` before Django sees the request.

    Liveness says only that the process serves requests, so nothing else needs to run: no request
    object, no middleware, no signals (Django's close the database connections on every request).
    It costs what a bare WSGI callable does under load, and answers whatever Host header a kubelet
    or load balancer sends. The server drops the body of a HEAD.
    """

    def __init__(self, application: Callable[..., Iterable[bytes]]) -> None:
        self.application = application

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == LIVENESS_PATH:
            start_response("200 OK", list(_LIVE_HEADERS))
            return [LIVE_BODY]
        return self.application(environ, start_response)


class ChunkedBodyMiddleware:
    """WSGI middleware: give a chunked request body the Content-Length Django reads it by.

    Django reads a body up to CONTENT_LENGTH only, so a chunked one (which has none) read as
    empty: the ingest answered "lightfield_id must be ..." to a valid batch. Gunicorn de-chunks
    the body and says so (`wsgi.input_terminated`); this reads at most one byte more than
    DATA_UPLOAD_MAX_MEMORY_SIZE of it and sets CONTENT_LENGTH to what it read, so a larger body
    gets RequestBodyLimitMiddleware's 413, as a declared one does. Under a server that does not
    de-chunk, the body is left alone and RequestBodyLimitMiddleware answers 411.
    """

    def __init__(self, application: Callable[..., Iterable[bytes]]) -> None:
        self.application = application

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if _chunked(environ) and environ.get("wsgi.input_terminated"):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            body = environ["wsgi.input"].read(-1 if limit is None else limit + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.application(environ, start_response)


def _chunked(environ: dict[str, Any]) -> bool:
    """A body framed by Transfer-Encoding (chunked) rather than by a Content-Length."""
    return bool(environ.get("HTTP_TRANSFER_ENCODING")) and not environ.get("CONTENT_LENGTH")


class RequestPathLimitMiddleware:
    """Answer 414 problem+json to a path longer than MAX_REQUEST_PATH_LENGTH characters.

    No route is that long; gunicorn's own limit (its request line, raised to its maximum in
    deploy/gunicorn.conf.py) would answer with an HTML page.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.MAX_REQUEST_PATH_LENGTH
        if len(request.path) > limit:
            detail = f"The request path is {len(request.path)} characters long; the limit is {limit}."
            return problem_response(status=414, detail=detail, request=request, max_path_length=limit)
        return self.get_response(request)


class RequestBodyLimitMiddleware:
    """Answer 413 to a body over DATA_UPLOAD_MAX_MEMORY_SIZE, and 411 to a chunked body that
    ChunkedBodyMiddleware could not read (the server did not de-chunk it).

    Django checks that limit only when `request.body` is read; DRF's parsers read the raw
    stream instead, so without this an API request could be of any size.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if _chunked(request.META) and "wsgi.input" in request.META:  # Django's ASGI request reads it all
            detail = "This server reads a request body only with a Content-Length; send one."
            return problem_response(status=411, detail=detail, request=request)
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


class LazyMessageMiddleware(MessageMiddleware):
    """Django's MessageMiddleware, with the message storage made when a view or a template first
    uses it rather than on every request.

    Making it costs a cookie signer and two storages per request (about 2% of a cached API
    request), and only the admin and the console use messages. Storage never used holds no
    message, so there is nothing to store with the response either.
    """

    def process_request(self, request: HttpRequest) -> None:
        request._messages = SimpleLazyObject(lambda: default_storage(request))  # type: ignore[attr-defined]

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        messages = getattr(request, "_messages", None)
        if isinstance(messages, SimpleLazyObject) and messages._wrapped is empty:
            return response
        return super().process_response(request, response)
