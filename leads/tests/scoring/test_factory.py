"""The factory: the rules without an API key, else one LLM scorer shared by the process."""

from __future__ import annotations

import time

from leads.scoring.factory import configured_scorer, reset_configured_scorer
from leads.scoring.model import LlmScorer
from leads.scoring.rules import score_by_rules
from leads.tests.scoring.support import LEAD, MODEL
from tests.llm_server import answer, error


def test_configured_scorer_recovers_in_real_time_after_a_short_reset(llm_settings, llm_server):
    llm_settings.LLM_MAX_ATTEMPTS = 1
    llm_settings.LLM_BREAKER_FAILURES = 1
    llm_settings.LLM_BREAKER_RESET_SECONDS = 0.2
    reset_configured_scorer()
    llm_server.script(error(500), answer(0.9, "enterprise", "back"))

    assert configured_scorer()(LEAD).fallback_reason == "llm unavailable: HTTP 500 after 1 attempt"
    assert configured_scorer()(LEAD).fallback_reason == "llm circuit breaker open"
    time.sleep(0.25)
    assert configured_scorer()(LEAD).model == f"llm:{MODEL}"
    assert len(llm_server.received) == 2


def test_configured_scorer_is_the_rules_without_an_api_key(settings):
    settings.OPENAI_API_KEY = ""

    assert configured_scorer() is score_by_rules


def test_configured_scorer_is_one_shared_llm_scorer_until_reset(llm_settings):
    first = configured_scorer()

    assert isinstance(first, LlmScorer)
    assert configured_scorer() is first
    reset_configured_scorer()
    assert configured_scorer() is not first
