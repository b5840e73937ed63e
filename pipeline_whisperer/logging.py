"""Log lines for the web and the pipeline processes: JSON (one object a line) or readable console.

Every line carries the correlation id of the work in hand; during a request also its method,
path and the name of the API key that authenticated it. Nothing that looks like a secret (API
keys, passwords, tokens, Authorization values, credentials in URLs, the configured secrets)
reaches the output: the formatters redact the rendered message, the extra fields and the
traceback. `redact` and `redact_data` are also what Sentry's `before_send` uses.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from pipeline_whisperer.correlation import get_correlation_id

ACCESS_LOGGER = "pipeline_whisperer.access"  # one line per request, written by CorrelationIdMiddleware
REDACTED = "[REDACTED]"
# Names whose values are secrets: as the last part of a key, header, field or variable name.
_SENSITIVE_WORDS = (
    "password|passwd|pwd|secret|secret[_-]?key|token|api[_-]?key|authorization|cookie|sessionid|dsn|credentials?"
)
_SENSITIVE_NAME = f"(?:{_SENSITIVE_WORDS})"
_SENSITIVE_KEY = re.compile(rf"{_SENSITIVE_NAME}$", re.IGNORECASE)
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization values: "Api-Key <key>", "Bearer <token>", "Basic <credentials>".
    (re.compile(r"\b(Api-Key|Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE), rf"\1 {REDACTED}"),
    # name=value, name: value, "name": "value" (also JSON-escaped and in query strings).
    (
        re.compile(
            rf"(\b[A-Za-z0-9_-]*?{_SENSITIVE_NAME})(\\?[\"']?\s*[:=]\s*)(\\?[\"'])?"
            r"(?(3)[^\"'\\]+|[^\s\"'\\,&;)}\]]+)",
            re.IGNORECASE,
        ),
        rf"\1\2\3{REDACTED}",
    ),
    # Credentials in URLs: scheme://user:password@host, and DSNs whose user part is the key.
    (re.compile(r"\b([a-z][a-z0-9+.-]*://)[^/\s@\"'\\]+@", re.IGNORECASE), rf"\1{REDACTED}@"),
    # Our API keys, `<prefix>.<secret>` (rest_framework_api_key: 8 + 32 letters and digits).
    (re.compile(r"\b([A-Za-z0-9]{8})\.[A-Za-z0-9]{32}\b"), rf"\1.{REDACTED}"),
]
# Matches wherever any of _PATTERNS could: most text has none of it, and one search is cheaper
# than the four substitutions.
_MAYBE_SECRET = re.compile(
    rf"{_SENSITIVE_WORDS}|api-key|bearer|basic|://|[A-Za-z0-9]{{8}}\.[A-Za-z0-9]{{32}}", re.IGNORECASE
)
# Settings whose values must never appear anywhere, whatever surrounds them.
_SECRET_SETTINGS = ("SECRET_KEY", "EMAIL_HOST_PASSWORD", "OPENAI_API_KEY", "KAFKA_SASL_PASSWORD", "METRICS_TOKEN")


def redact(text: str, secrets: list[str] | None = None) -> str:
    """`text` with every secret it contains replaced by `[REDACTED]` (`secrets`: the configured
    ones, when the caller has them already)."""
    if _MAYBE_SECRET.search(text):
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
    for secret in _configured_secrets() if secrets is None else secrets:
        text = text.replace(secret, REDACTED)
    return text


def redact_data(value: Any, secrets: list[str] | None = None) -> Any:
    """A copy of `value` (dicts, lists, strings) redacted; values under secret keys replaced whole.

    Objects that are not JSON types become their redacted `str()`, so nothing unredacted is left
    for a serializer to render later.
    """
    # Read from the settings once per value, not once per string in it: per log line, reading
    # them was half the cost of formatting it.
    secrets = _configured_secrets() if secrets is None else secrets
    if isinstance(value, dict):
        return {
            key: REDACTED
            if isinstance(key, str) and _SENSITIVE_KEY.search(key) and item
            else redact_data(item, secrets)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_data(item, secrets) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(value if isinstance(value, str) else str(value), secrets)


def _configured_secrets() -> list[str]:
    from django.conf import settings

    if not settings.configured:
        return []
    values = [getattr(settings, name, "") for name in _SECRET_SETTINGS]
    values += [database.get("PASSWORD", "") for database in getattr(settings, "DATABASES", {}).values()]
    # Short values would redact ordinary words; real secrets are longer.
    return [value for value in values if isinstance(value, str) and len(value) >= 8]


# --- What the lines of one request share ------------------------------------------------

_request_fields: ContextVar[dict[str, str] | None] = ContextVar("request_log_fields", default=None)


@contextmanager
def request_log_scope(**fields: str) -> Iterator[dict[str, str]]:
    """Add `fields` to every log line written inside the block (one request)."""
    token = _request_fields.set(dict(fields))
    try:
        yield _request_fields.get() or {}
    finally:
        _request_fields.reset(token)


def bind_request_field(name: str, value: str) -> None:
    """Add a field to the lines of the current request from now on; no-op outside one."""
    fields = _request_fields.get()
    if fields is not None:
        fields[name] = value


class ContextFilter(logging.Filter):
    """Adds `correlation_id` (null outside any work) and the current request's fields to a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "correlation_id", None):
            record.correlation_id = get_correlation_id() or None
        for name, value in (_request_fields.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonLogFormatter(JsonFormatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, then the context."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            # Django's request object is not data; method and path come from the context.
            reserved_attrs=[*RESERVED_ATTRS, "request", "taskName"],
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return redact_data(log_data)


class ConsoleLogFormatter(logging.Formatter):
    """Readable lines for development, redacted like the JSON ones."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)-7s %(name)s [%(correlation_id)s] %(message)s",
            defaults={"correlation_id": "-"},
        )

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def logging_config(*, level: str, log_format: str) -> dict[str, Any]:
    """The LOGGING setting: one stream handler on the root logger, `json` or `console` lines."""
    formatter = JsonLogFormatter if log_format == "json" else ConsoleLogFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"default": {"()": formatter}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "default", "filters": ["context"]},
        },
        "root": {"handlers": ["console"], "level": level},
        # Django's own handlers (plain text, mail to admins) replaced: its lines go to the root's.
        "loggers": {
            "django": {"handlers": [], "level": level, "propagate": True},
            # It names the credential source it found, at INFO, on every S3 client: noise under cron.
            "botocore.credentials": {"level": "WARNING"},
        },
    }
