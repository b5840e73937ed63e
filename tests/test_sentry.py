"""Sentry gets unexpected errors with the correlation id, and never a key or a password."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sentry_sdk
from rest_framework.test import APIClient

from pipeline_whisperer.models import ApiKey
from pipeline_whisperer.sentry import sentry_init
from tests.sentry_receiver import SentryReceiver

pytestmark = [pytest.mark.django_db, pytest.mark.urls("pipeline_whisperer.tests.urls")]
PASSWORD = "hunter2-correct-horse"


@pytest.fixture
def sentry() -> Iterator[SentryReceiver]:
    """sentry-sdk started as settings start it, sending to a receiver on loopback; off afterwards."""
    with SentryReceiver() as receiver:
        sentry_init(dsn=receiver.dsn, environment="test", release="pw@test", sample_rate=1.0, traces_sample_rate=0.0)
        yield receiver
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)


def _fail(path: str) -> str:
    """Call a failing view with a key and a password everywhere; the key, once the event is sent."""
    _, key = ApiKey.objects.create_key(name="careless", scope=ApiKey.Scope.WRITE)
    client = APIClient(raise_request_exception=False)
    response = client.post(
        f"{path}?api_key={key}&password={PASSWORD}",
        {"username": "ops", "password": PASSWORD, "token": key},
        format="json",
        HTTP_X_API_KEY=key,
        HTTP_AUTHORIZATION=f"Api-Key {key}",
        HTTP_X_REQUEST_ID="req-sentry-1",
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 500
    sentry_sdk.flush(timeout=10)
    return key


def test_an_unexpected_error_reaches_sentry_tagged_with_the_correlation_id(sentry):
    _fail("/test/fail")
    [event] = [e for e in sentry.events() if e.get("exception")]
    assert event["tags"]["correlation_id"] == "req-sentry-1"
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert (event["environment"], event["release"]) == ("test", "pw@test")


def test_a_key_and_a_password_in_the_request_never_reach_sentry(sentry):
    key = _fail("/test/fail")
    assert sentry.events()
    sent = "\n".join(sentry.envelopes)
    assert "RuntimeError" in sent
    assert PASSWORD not in sent
    assert key.split(".")[1] not in sent


def test_an_unexpected_error_in_an_api_view_reaches_sentry_without_the_key(sentry):
    _, key = ApiKey.objects.create_key(name="caller", scope=ApiKey.Scope.READ)
    client = APIClient(raise_request_exception=False)
    response = client.get("/api/v1/test/fail", HTTP_X_API_KEY=key, HTTP_X_REQUEST_ID="req-sentry-api")
    assert response.status_code == 500
    sentry_sdk.flush(timeout=10)
    [event] = [e for e in sentry.events() if e.get("exception")]
    assert event["tags"]["correlation_id"] == "req-sentry-api"
    assert key.split(".")[1] not in "\n".join(sentry.envelopes)
