"""The LLM scorer against a real OpenAI-compatible server on loopback: answers, retries, breaker, fallback."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import socket
import time

import pytest

from leads.models import Persona
from leads.scoring.model import LlmScorer
from leads.scoring.rules import score_by_rules
from leads.scoring.types import ScoreResult
from leads.tests.scoring.support import API_KEY, LEAD, MODEL
from pipeline_whisperer.resilience import BreakerState
from tests.llm_server import Reply, answer, error, malformed, slow


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_scorer(**kwargs) -> LlmScorer:
    """An LlmScorer from the current settings with tiny backoff delays, so the suite stays fast."""
    return LlmScorer(base_delay=0.001, max_delay=0.005, rng=random.Random(7), **kwargs)


def rules_fallback(reason: str) -> ScoreResult:
    return dataclasses.replace(score_by_rules(LEAD), fallback_reason=reason)


def test_good_answer_scores_with_the_models_score_persona_and_reasoning(llm_settings, llm_server):
    llm_server.script(answer(0.82, "mid_market", "Senior buyer with budget and a near timeline."))

    result = make_scorer()(LEAD)

    assert result == ScoreResult(
        score=0.82,
        persona="mid_market",
        reasons=("Senior buyer with budget and a near timeline.",),
        model=f"llm:{MODEL}",
        fallback_reason="",
    )


def test_request_asks_for_the_strict_json_schema_and_carries_the_key(llm_settings, llm_server):
    llm_server.script(answer(0.5, "smb", "ok"))

    make_scorer()(LEAD)

    [request] = llm_server.received
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body["model"] == MODEL
    response_format = request.body["response_format"]
    assert response_format["type"] == "json_schema"
    schema = response_format["json_schema"]
    assert schema["strict"] is True
    assert schema["schema"]["properties"]["persona"]["enum"] == list(Persona.values)
    assert set(schema["schema"]["required"]) == {"score", "persona", "reasoning"}
    system, user = request.body["messages"]
    assert system["role"] == "system"
    assert json.loads(user["content"]) == {**dataclasses.asdict(LEAD), "pain_points": list(LEAD.pain_points)}


def test_a_failed_attempt_is_retried_and_the_next_answer_used(llm_settings, llm_server):
    llm_server.script(error(503), answer(0.6, "startup", "fine"))

    result = make_scorer()(LEAD)

    assert (result.score, result.model, result.fallback_reason) == (0.6, f"llm:{MODEL}", "")
    assert len(llm_server.received) == 2


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (malformed("I think this lead is great!"), "llm unavailable: malformed answer: not JSON after 3 attempts"),
        (
            malformed('{"score": 1.5, "persona": "smb", "reasoning": "x"}'),
            "llm unavailable: malformed answer: score is not a number in [0, 1] after 3 attempts",
        ),
        (
            malformed('{"score": 0.5, "persona": "wizard", "reasoning": "x"}'),
            "llm unavailable: malformed answer: unknown persona after 3 attempts",
        ),
        (
            malformed('{"score": 0.5, "persona": "smb"}'),
            "llm unavailable: malformed answer: no reasoning after 3 attempts",
        ),
        (error(500), "llm unavailable: HTTP 500 after 3 attempts"),
        (error(429, {"Retry-After": "0"}), "llm unavailable: rate limited (HTTP 429) after 3 attempts"),
    ],
    ids=["not-json", "score-out-of-range", "unknown-persona", "no-reasoning", "http-500", "http-429"],
)
def test_lead_failing_every_attempt_is_scored_by_rules_saying_why(llm_settings, llm_server, reply, reason):
    llm_server.script(reply, reply, reply)

    result = make_scorer()(LEAD)

    assert result == rules_fallback(reason)
    assert len(llm_server.received) == llm_settings.LLM_MAX_ATTEMPTS


def test_timeout_ends_in_rules_after_the_configured_attempts(llm_settings, llm_server):
    llm_settings.LLM_TIMEOUT_SECONDS = 0.3
    llm_server.script(slow(3.0), slow(3.0), slow(3.0))

    started = time.monotonic()
    result = make_scorer()(LEAD)

    assert result == rules_fallback("llm unavailable: timeout after 3 attempts")
    assert len(llm_server.received) == 3
    assert time.monotonic() - started < 3.0


def test_unreachable_server_ends_in_rules_after_the_configured_attempts(llm_settings):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    llm_settings.OPENAI_BASE_URL = f"http://127.0.0.1:{port}/v1"

    result = make_scorer()(LEAD)

    assert result == rules_fallback("llm unavailable: connection error after 3 attempts")


def test_client_error_other_than_429_is_not_retried(llm_settings, llm_server):
    llm_server.script(error(401))

    result = make_scorer()(LEAD)

    assert result == rules_fallback("llm unavailable: HTTP 401 after 1 attempt")
    assert len(llm_server.received) == 1


def test_breaker_counts_failed_leads_and_once_open_sends_nothing(llm_settings, llm_server):
    llm_server.script(*[error(500)] * 6)
    scorer = make_scorer()

    scorer(LEAD)
    assert scorer.breaker.state is BreakerState.CLOSED  # one failed lead of the two it takes
    scorer(LEAD)
    result = scorer(LEAD)

    assert scorer.breaker.state is BreakerState.OPEN
    assert result == rules_fallback("llm circuit breaker open")
    assert len(llm_server.received) == 6  # 2 leads x 3 attempts; the third lead never reached it


def test_breaker_closes_after_the_reset_timeout_when_the_trial_succeeds(llm_settings, llm_server):
    clock = ManualClock()
    scorer = make_scorer(clock=clock)
    llm_server.script(*[error(500)] * 6)
    scorer(LEAD)
    scorer(LEAD)
    assert scorer.breaker.state is BreakerState.OPEN

    clock.now += llm_settings.LLM_BREAKER_RESET_SECONDS
    llm_server.script(answer(0.7, "enterprise", "trial"), answer(0.4, "smb", "after"))

    assert scorer(LEAD).model == f"llm:{MODEL}"
    assert scorer.breaker.state is BreakerState.CLOSED
    assert scorer(LEAD).reasons == ("after",)
    assert len(llm_server.received) == 8


def test_breaker_reopens_when_the_trial_fails(llm_settings, llm_server):
    clock = ManualClock()
    llm_settings.LLM_MAX_ATTEMPTS = 1
    scorer = make_scorer(clock=clock)
    llm_server.script(error(500), error(500), error(500))
    scorer(LEAD)
    scorer(LEAD)

    clock.now += llm_settings.LLM_BREAKER_RESET_SECONDS
    assert scorer(LEAD).fallback_reason == "llm unavailable: HTTP 500 after 1 attempt"

    assert scorer.breaker.state is BreakerState.OPEN
    assert scorer(LEAD).fallback_reason == "llm circuit breaker open"
    assert len(llm_server.received) == 3


def test_api_key_never_appears_in_the_logs(llm_settings, llm_server, caplog):
    caplog.set_level(logging.DEBUG)
    echoing_401 = Reply(status=401, body={"error": {"message": f"Incorrect API key provided: {API_KEY}"}})
    llm_server.script(echoing_401, error(500), error(500), error(500), answer(0.5, "smb", "ok"))
    scorer = make_scorer()

    scorer(LEAD)
    scorer(LEAD)
    scorer.breaker.record_success()
    scorer(LEAD)

    warnings = [record for record in caplog.records if record.name == "leads.scoring.model"]
    assert [record.levelno for record in warnings] == [logging.WARNING, logging.WARNING]
    assert API_KEY not in caplog.text
    assert all(API_KEY not in repr(record.__dict__) for record in caplog.records)
