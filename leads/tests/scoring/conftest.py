"""Fixtures for the scoring tests: settings pointing at the loopback model server."""

from __future__ import annotations

import pytest

from leads.scoring.factory import reset_configured_scorer
from leads.tests.scoring.support import API_KEY, MODEL


@pytest.fixture
def llm_settings(settings, llm_server):
    """Settings pointing at the local server: 3 attempts, the breaker opening after 2 failed leads."""
    settings.OPENAI_API_KEY = API_KEY
    settings.OPENAI_BASE_URL = llm_server.base_url
    settings.OPENAI_MODEL = MODEL
    settings.LLM_TIMEOUT_SECONDS = 2.0
    settings.LLM_MAX_ATTEMPTS = 3
    settings.LLM_BREAKER_FAILURES = 2
    settings.LLM_BREAKER_RESET_SECONDS = 30.0
    reset_configured_scorer()
    yield settings
    reset_configured_scorer()
