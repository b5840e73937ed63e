"""The scorer the settings ask for: the rules without `OPENAI_API_KEY`, else the model scorer; and
the one model client that scoring and reply classification share.

The factory sits above both scorers and imports them; neither imports it, so there is no cycle.
The model modules are imported when the settings ask for them: they bring the openai SDK, whose
import costs every process (each pipeline stage, each web worker) about 0.6 s of start-up otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.conf import settings

from leads.scoring.rules import score_by_rules
from leads.scoring.types import LeadFacts, ScoreResult

if TYPE_CHECKING:
    from leads.scoring.llm import LlmClient

_configured_lock = threading.Lock()
_configured_llm: LlmClient | None = None
_configured_llm_scorer: Callable[[LeadFacts], ScoreResult] | None = None


def configured_llm() -> LlmClient | None:
    """The process's one model client (None without `OPENAI_API_KEY`), built on first use, so
    every question to the model counts towards one circuit breaker and reuses one connection
    pool. Safe under concurrent threads."""
    global _configured_llm
    if not settings.OPENAI_API_KEY:
        return None
    with _configured_lock:
        if _configured_llm is None:
            from leads.scoring.llm import LlmClient

            _configured_llm = LlmClient()
        return _configured_llm


def configured_scorer() -> Callable[[LeadFacts], ScoreResult]:
    """The scorer the settings ask for: the rules without `OPENAI_API_KEY`, else the LLM scorer
    on the shared client (`configured_llm`). Safe under concurrent threads."""
    global _configured_llm_scorer
    client = configured_llm()
    if client is None:
        return score_by_rules
    with _configured_lock:
        if _configured_llm_scorer is None:
            from leads.scoring.model import LlmScorer

            _configured_llm_scorer = LlmScorer(client=client)
        return _configured_llm_scorer


def reset_configured_scorer() -> None:
    """Forget the shared model client and scorer, so the next use reads the settings afresh (tests)."""
    global _configured_llm, _configured_llm_scorer
    with _configured_lock:
        _configured_llm = None
        _configured_llm_scorer = None
