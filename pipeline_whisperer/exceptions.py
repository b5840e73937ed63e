"""The error hierarchy and its one rendering: RFC 9457 problem+json.

Services raise `DomainError` subclasses (never DRF exceptions: workers and commands call them
too). `problem_exception_handler` renders those, DRF's and Django's errors alike; anything else
becomes a logged 500 whose body says nothing about the internals.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django_ratelimit.exceptions import Ratelimited
from psycopg_pool import PoolTimeout
from rest_framework import exceptions as drf
from rest_framework.request import Request

from pipeline_whisperer.correlation import get_correlation_id

if TYPE_CHECKING:
    from rest_framework.response import Response

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://pipeline-whisperer.dev/problems/"
# How long a client should wait before retrying while the database is unreachable.
DATABASE_RETRY_AFTER_SECONDS = 5


class DomainError(Exception):
    """A failure the caller can act on: a code, a message, extra fields and an HTTP status."""

    status = 400
    code = "invalid"
    title = "Invalid request"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class InvalidInput(DomainError):
    code = "invalid"
    title = "Invalid request"


class AuthenticationRequired(DomainError):
    status = 401
    code = "not-authenticated"
    title = "Authentication required"


class PermissionDenied(DomainError):
    status = 403
    code = "permission-denied"
    title = "Permission denied"


class NotFound(DomainError):
    status = 404
    code = "not-found"
    title = "Not found"


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload-too-large"
    title = "Payload too large"


class RateLimited(DomainError):
    """Too many requests; `retry_after` (seconds) becomes the `Retry-After` header."""

    status = 429
    code = "rate-limited"
    title = "Too many requests"

    def __init__(self, message: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after = retry_after


class ServiceUnavailable(DomainError):
    """A dependency (database, cache, broker, mail, model) cannot serve the request now."""

    status = 503
    code = "service-unavailable"
    title = "Service unavailable"


class ExternalServiceError(ServiceUnavailable):
    """An external service failed; subclasses name which."""


class LlmError(ExternalServiceError):
    code = "llm-unavailable"
    title = "Language model unavailable"


class KafkaError(ExternalServiceError):
    code = "kafka-unavailable"
    title = "Event bus unavailable"


class SmtpError(ExternalServiceError):
    code = "smtp-unavailable"
    title = "Mail server unavailable"


class BackupError(DomainError):
    """A backup, restore or verification failed or was refused; the database is as it was."""

    status = 500
    code = "backup-failed"
    title = "Backup failed"


class BackupInterrupted(BackupError):
    """SIGTERM reached a backup command; it is raised where the work is, so every clean-up runs."""


class BackupBusy(BackupError):
    """Another backup or restore holds the lock."""

    status = 409
    code = "backup-busy"
    title = "Backup in progress"


_DRF_CODES = {
    400: ("invalid", "Invalid request"),
    401: ("not-authenticated", "Authentication required"),
    403: ("permission-denied", "Permission denied"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    411: ("length-required", "Length required"),
    413: ("payload-too-large", "Payload too large"),
    414: ("uri-too-long", "URI too long"),
    415: ("unsupported-media-type", "Unsupported media type"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal-error", "Internal server error"),
    503: ("service-unavailable", "Service unavailable"),
}


def problem_body(
    *,
    status: int,
    detail: str,
    request: HttpRequest | None = None,
    code: str | None = None,
    title: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The problem+json document; `instance` is the request path."""
    default_code, default_title = _DRF_CODES.get(status, ("error", "Error"))
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (code or default_code),
        "title": title or default_title,
        "status": status,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = request.path
    correlation_id = get_correlation_id()
    if correlation_id:
        body["correlation_id"] = correlation_id
    body.update(extra)
    return body


def problem_response(**kwargs: Any) -> JsonResponse:
    """A plain Django response carrying a problem document (for middleware and handlers)."""
    return JsonResponse(problem_body(**kwargs), status=kwargs["status"], content_type=PROBLEM_CONTENT_TYPE)


def _flatten_errors(detail: Any) -> str:
    """A one-line summary of DRF's nested error detail, for `detail`."""
    if isinstance(detail, dict):
        parts = [f"{key}: {_flatten_errors(value)}" for key, value in detail.items()]
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(_flatten_errors(item) for item in detail)
    return str(detail)


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    """DRF's EXCEPTION_HANDLER: every error as problem+json."""
    # DRF's renderers, responses and views are imported here, by the API, not by every worker
    # and command that raises these errors (~0.1 s of their start-up).
    from rest_framework.renderers import JSONRenderer
    from rest_framework.views import exception_handler as drf_exception_handler

    request = context.get("request")
    if isinstance(request, Request):
        # A problem document whatever the caller accepts: the browsable API would wrap it in HTML
        # under a problem+json Content-Type.
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = PROBLEM_CONTENT_TYPE
    if _database_unavailable(exc):
        return _database_unavailable_response(exc, request)
    if isinstance(exc, DomainError):
        body = problem_body(
            status=exc.status, detail=exc.message, request=request, code=exc.code, title=exc.title, **exc.extra
        )
        domain_response = _problem(body)
        if isinstance(exc, RateLimited):
            domain_response["Retry-After"] = str(exc.retry_after)
        return domain_response
    if isinstance(exc, DjangoValidationError):
        exc = drf.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, Ratelimited):
        # django-ratelimit's decorator raises a PermissionDenied; it means 429, not 403.
        exc = drf.Throttled()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("unhandled error in API view", exc_info=exc)
        body = problem_body(status=500, detail="The server could not complete the request.", request=request)
        return _problem(body)

    extra: dict[str, Any] = {}
    if isinstance(exc, drf.ValidationError):
        detail = "The request is not valid: " + _flatten_errors(exc.detail)
        extra["errors"] = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
    else:
        detail = _flatten_errors(exc.detail) if isinstance(exc, drf.APIException) else str(exc)
    body = problem_body(status=response.status_code, detail=detail, request=request, **extra)
    return _problem(body, headers=response)


def _problem(body: dict[str, Any], headers: Response | None = None) -> Response:
    from rest_framework.response import Response

    response = Response(body, status=body["status"], content_type=PROBLEM_CONTENT_TYPE)
    if headers is not None:
        for name in ("WWW-Authenticate", "Retry-After", "Allow"):
            if name in headers:
                response[name] = headers[name]
    return response


def _database_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError | InterfaceError | PoolTimeout)


def _database_unavailable_response(exc: BaseException, request: HttpRequest | None) -> HttpResponse:
    """503 with Retry-After: the database is down or its pool exhausted, not a bug of ours."""
    logger.warning("database unavailable: %s", exc)
    error = ServiceUnavailable("The database is unavailable; try again shortly.")
    response = problem_response(
        status=error.status, detail=error.message, request=request, code=error.code, title=error.title
    )
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


def _wants_html(request: HttpRequest) -> bool:
    return not request.path.startswith("/api/") and request.accepts("text/html")


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_html(request):
        return defaults.page_not_found(request, exception or Http404())
    return problem_response(status=404, detail="No resource at this address.", request=request)


def handler500(request: HttpRequest) -> HttpResponse:
    # Django calls this while handling the exception, so it is still the current one.
    exc = sys.exc_info()[1]
    if exc is not None and _database_unavailable(exc):
        return _database_unavailable_response(exc, request)
    if _wants_html(request):
        return defaults.server_error(request)
    return problem_response(status=500, detail="The server could not complete the request.", request=request)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return problem_response(status=400, detail="The request could not be understood.", request=request)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_html(request):
        return defaults.permission_denied(request, exception or DjangoPermissionDenied())
    return problem_response(status=403, detail="You may not do this.", request=request)
