"""The scorer the settings ask for: the rules without `OPENAI_API_KEY`, else the model scorer.

The factory sits above both scorers and imports them; neither imports it, so there is no cycle.
The model scorer is imported when the settings ask for it: it brings the openai SDK, whose import
costs every process (each pipeline stage, each web worker) about 0.6 s of start-up otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.conf import settings

from leads.scoring.rules import score_by_rules
from leads.scoring.types import LeadFacts, ScoreResult

_configured_lock = threading.Lock()
_configured_llm_scorer: Callable[[LeadFacts], ScoreResult] | None = None


def configured_scorer() -> Callable[[LeadFacts], ScoreResult]:
    """The scorer the settings ask for: the rules without `OPENAI_API_KEY`, else the LLM scorer.

    The LLM scorer is built on first use and shared by the whole process, so every lead counts
    towards one circuit breaker and reuses one connection pool. Safe under concurrent threads.
    """
    global _configured_llm_scorer
    if not settings.OPENAI_API_KEY:
        return score_by_rules
    with _configured_lock:
        if _configured_llm_scorer is None:
            from leads.scoring.model import LlmScorer

            _configured_llm_scorer = LlmScorer()
        return _configured_llm_scorer


def reset_configured_scorer() -> None:
    """Forget the shared LLM scorer, so the next `configured_scorer()` reads the settings afresh (tests)."""
    global _configured_llm_scorer
    with _configured_lock:
        _configured_llm_scorer = None
