"""Log lines: JSON objects with the request's context, one access line per request, no secrets."""

from __future__ import annotations

import logging
import uuid

import pytest
from django.test import Client
from rest_framework.test import APIClient

from pipeline_whisperer.correlation import correlation_scope
from pipeline_whisperer.logging import ConsoleLogFormatter, ContextFilter, redact, redact_data
from pipeline_whisperer.models import ApiKey
from pipeline_whisperer.tests.support import captured_log_lines

SECRET_PASSWORD = "hunter2-correct-horse"
logger = logging.getLogger("pipeline_whisperer.tests")


def test_a_line_is_one_json_object_with_time_level_logger_message_and_correlation_id():
    with captured_log_lines() as lines, correlation_scope("corr-shape"):
        logger.info("hello %s", "world")
    [line] = lines.json()
    assert line["time"].endswith("+00:00")
    assert {key: line[key] for key in ("level", "logger", "message", "correlation_id")} == {
        "level": "INFO",
        "logger": "pipeline_whisperer.tests",
        "message": "hello world",
        "correlation_id": "corr-shape",
    }


def test_a_line_outside_any_request_or_event_has_a_null_correlation_id():
    with captured_log_lines() as lines:
        logger.info("start-up")
    assert lines.json()[0]["correlation_id"] is None


def test_a_traceback_stays_inside_its_json_line():
    with captured_log_lines() as lines:
        try:
            raise ValueError("broken")
        except ValueError:
            logger.exception("it failed")
    [line] = lines.json()
    assert "ValueError: broken" in line["exc_info"]


def test_the_console_format_is_one_readable_line_with_the_correlation_id():
    record = logging.LogRecord("pipeline_whisperer.tests", logging.INFO, __file__, 1, "password=%s", ("x1y2z3",), None)
    with correlation_scope("corr-console"):
        ContextFilter().filter(record)
    line = ConsoleLogFormatter().format(record)
    assert line.endswith("INFO    pipeline_whisperer.tests [corr-console] password=[REDACTED]")


@pytest.mark.django_db
def test_the_access_line_has_method_path_status_duration_key_name_and_correlation_id(api_client):
    with captured_log_lines() as lines:
        response = api_client.get("/api/v1/leads", HTTP_X_REQUEST_ID="req-access-1")
    assert response.status_code == 200
    [access] = lines.from_logger("pipeline_whisperer.access")
    assert access["level"] == "INFO"
    assert access["method"] == "GET"
    assert access["path"] == "/api/v1/leads"
    assert access["status"] == 200
    assert access["duration_ms"] >= 0
    assert access["api_key_name"] == "test write"
    assert access["correlation_id"] == "req-access-1"


@pytest.mark.urls("pipeline_whisperer.tests.urls")
def test_every_line_written_during_a_request_carries_its_method_path_and_correlation_id():
    with captured_log_lines() as lines:
        Client().get("/test/log", HTTP_X_REQUEST_ID="req-inside")
    [inside] = lines.from_logger("pipeline_whisperer.tests")
    assert (inside["method"], inside["path"], inside["correlation_id"]) == ("GET", "/test/log", "req-inside")


@pytest.mark.django_db
def test_a_4xx_is_logged_once_by_the_access_line_with_the_correlation_id(anonymous_client):
    with captured_log_lines() as lines:
        anonymous_client.get("/api/v1/leads", HTTP_X_REQUEST_ID="req-401")
    assert lines.from_logger("django.request") == []
    [access] = lines.from_logger("pipeline_whisperer.access")
    assert (access["level"], access["status"], access["correlation_id"]) == ("WARNING", 401, "req-401")


def test_a_well_formed_x_request_id_is_kept_and_echoed():
    response = Client().get("/api/v1/nothing", HTTP_X_REQUEST_ID="trace:abc-123_4.5")
    assert response["X-Request-ID"] == "trace:abc-123_4.5"


@pytest.mark.parametrize("incoming", ["", "has spaces", "line\nbreak", "x" * 101, "<script>"])
def test_a_missing_or_malformed_x_request_id_is_replaced_by_a_uuid(incoming):
    response = Client().get("/api/v1/nothing", HTTP_X_REQUEST_ID=incoming)
    assert str(uuid.UUID(response["X-Request-ID"])) == response["X-Request-ID"]


# --- Redaction --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Api-Key AbCdEfGh.0123456789abcdefghijklmnopqrstuv", "0123456789abcdefghijklmnopqrstuv"),
        ("Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi"),
        ("key AbCdEfGh.0123456789abcdefghijklmnopqrstuv used", "0123456789abcdefghijklmnopqrstuv"),
        ("{'HTTP_X_API_KEY': 'short.key-of-any-shape'}", "short.key-of-any-shape"),
        ("/login?user=a&password=hunter2&next=/", "hunter2"),
        ('{"password": "two words"}', "two words"),
        ('{\\"password\\": \\"escaped\\"}', "escaped"),
        ("access_token=abc123def", "abc123def"),
        ("postgres://pipeline:pg-secret@db:5432/pipeline", "pg-secret"),
        ("SENTRY_DSN=https://publickey@o1.ingest.sentry.io/1", "publickey"),
    ],
)
def test_redact_removes_the_secret(text, secret):
    assert secret not in redact(text)


def test_redact_removes_a_configured_secret_wherever_it_appears(settings):
    settings.EMAIL_HOST_PASSWORD = "smtp-pass-1234"
    assert redact("connecting with smtp-pass-1234 now") == "connecting with [REDACTED] now"


def test_redact_data_replaces_values_under_secret_keys_and_keeps_the_key_name():
    data = {"X-Api-Key": "k", "nested": [{"client_secret": "s"}], "api_key_name": "billing", "status": 200}
    assert redact_data(data) == {
        "X-Api-Key": "[REDACTED]",
        "nested": [{"client_secret": "[REDACTED]"}],
        "api_key_name": "billing",
        "status": 200,
    }


@pytest.mark.django_db
@pytest.mark.urls("pipeline_whisperer.tests.urls")
def test_a_key_and_password_in_headers_body_and_query_never_reach_the_logs():
    _, key = ApiKey.objects.create_key(name="careless", scope=ApiKey.Scope.WRITE)
    client = APIClient(raise_request_exception=False)
    with captured_log_lines() as lines:
        response = client.post(
            f"/test/fail?api_key={key}&password={SECRET_PASSWORD}",
            {"username": "ops", "password": SECRET_PASSWORD, "token": key},
            format="json",
            HTTP_X_API_KEY=key,
            HTTP_AUTHORIZATION=f"Api-Key {key}",
        )
    assert response.status_code == 500
    output = lines.text()
    assert "RuntimeError" in output  # the traceback was logged, redacted
    assert "received query" in output
    assert SECRET_PASSWORD not in output
    assert key.split(".")[1] not in output
