"""Fixtures for the webhook tests: anymail's settings and the embedded shape."""

from __future__ import annotations

from typing import Any

import pytest

from leads.scoring.factory import reset_configured_scorer
from leads.tests.webhooks.inbound_payloads import MAILGUN_SIGNING_KEY, UNSUBSCRIBE_MAILTO, WEBHOOK_SECRET


@pytest.fixture
def inbound_settings(settings) -> Any:
    """Webhook basic auth and the Mailgun signing key; no broker, so the outbox is delivered to
    the feedback stage in process after commit; rules, not a model, unless a test says so."""
    settings.ANYMAIL = {"WEBHOOK_SECRET": WEBHOOK_SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY}
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    settings.OUTREACH_UNSUBSCRIBE_MAILTO = UNSUBSCRIBE_MAILTO
    settings.OPENAI_API_KEY = ""
    reset_configured_scorer()
    yield settings
    reset_configured_scorer()


@pytest.fixture
def llm_inbound_settings(inbound_settings, llm_server) -> Any:
    """The same, with the loopback model server configured: 2 attempts, quick to give up."""
    inbound_settings.OPENAI_API_KEY = "sk-test-replies"
    inbound_settings.OPENAI_BASE_URL = llm_server.base_url
    inbound_settings.OPENAI_MODEL = "test-model"
    inbound_settings.LLM_TIMEOUT_SECONDS = 2.0
    inbound_settings.LLM_MAX_ATTEMPTS = 2
    inbound_settings.LLM_BREAKER_FAILURES = 5
    reset_configured_scorer()
    return inbound_settings
