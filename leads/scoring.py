"""The deterministic, explainable rule-based scorer.

Each rule adds points and says why; the score is the points over the maximum, so the stored
reasons add up to the score. Pure: it reads a `LeadFacts` and touches no database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings

RULES_MODEL = "rules-v1"

_SIZE_POINTS = {"1-10": 5, "11-50": 12, "51-200": 18, "201-1000": 22, "1000+": 25}
_BUDGET_POINTS = {"<10k": 3, "10k-50k": 10, "50k-100k": 16, "100k-500k": 22, "500k+": 25}
_SENIORITY = (  # first match wins
    (("chief", "ceo", "cto", "cfo", "coo", "cmo", "cro", "founder", "owner", "president"), 20, "C-level or founder"),
    (("vp", "vice president", "head of", "director"), 16, "senior leader"),
    (("manager", "lead", "principal"), 10, "manager"),
    (("engineer", "analyst", "specialist", "consultant", "developer"), 5, "individual contributor"),
)
_TIMELINE_POINTS = (
    ("immediate", 10),
    ("asap", 10),
    ("1 month", 9),
    ("q1", 7),
    ("3 month", 7),
    ("quarter", 6),
    ("6 month", 4),
    ("year", 2),
)
_TARGET_INDUSTRIES = {
    "software",
    "saas",
    "technology",
    "fintech",
    "financial services",
    "e-commerce",
    "ecommerce",
    "healthcare",
    "marketing",
    "retail",
    "logistics",
}
_INDUSTRY_POINTS = 10
_PAIN_POINT_POINTS, _PAIN_POINT_CAP = 2, 10
MAX_POINTS = 25 + 25 + 20 + 10 + _INDUSTRY_POINTS + _PAIN_POINT_CAP


@dataclass(frozen=True)
class LeadFacts:
    """What the scorers may look at, whatever the lead's source."""

    company_name: str
    company_size: str = ""
    company_industry: str = ""
    contact_title: str = ""
    budget_range: str = ""
    timeline: str = ""
    pain_points: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ScoreResult:
    score: float
    persona: str
    reasons: tuple[str, ...]
    model: str
    fallback_reason: str = ""


def score_by_rules(facts: LeadFacts) -> ScoreResult:
    reasons: list[str] = []
    points = 0
    for earned, reason in _rule_points(facts):
        points += earned
        reasons.append(f"+{earned}: {reason}")
    score = round(points / MAX_POINTS, 4)
    return ScoreResult(score=score, persona=persona_for(facts), reasons=tuple(reasons), model=RULES_MODEL)


def _rule_points(facts: LeadFacts) -> Iterable[tuple[int, str]]:
    if facts.company_size in _SIZE_POINTS:
        yield _SIZE_POINTS[facts.company_size], f"company size {facts.company_size}"
    if facts.budget_range in _BUDGET_POINTS:
        yield _BUDGET_POINTS[facts.budget_range], f"budget {facts.budget_range}"
    title = facts.contact_title.lower()
    for words, earned, label in _SENIORITY:
        if any(word in title for word in words):
            yield earned, f"title '{facts.contact_title}' is {label}"
            break
    timeline = facts.timeline.lower()
    for phrase, earned in _TIMELINE_POINTS:
        if phrase in timeline:
            yield earned, f"timeline '{facts.timeline}'"
            break
    if facts.company_industry.lower() in _TARGET_INDUSTRIES:
        yield _INDUSTRY_POINTS, f"target industry {facts.company_industry}"
    pains = [pain for pain in facts.pain_points if pain]
    if pains:
        yield min(len(pains) * _PAIN_POINT_POINTS, _PAIN_POINT_CAP), f"{len(pains)} stated pain point(s)"


def persona_for(facts: LeadFacts) -> str:
    """The persona follows company size, then budget; a lone buyer is an individual."""
    if facts.company_size == "1000+" or facts.budget_range == "500k+":
        return "enterprise"
    if facts.company_size in {"201-1000", "51-200"}:
        return "mid_market"
    if facts.company_size == "11-50":
        return "smb"
    if facts.company_size == "1-10":
        return "individual" if facts.budget_range == "<10k" else "startup"
    return "unknown"


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
            from leads.llm_scoring import LlmScorer  # lazily: the rules need neither openai nor the models

            _configured_llm_scorer = LlmScorer()
        return _configured_llm_scorer


def reset_configured_scorer() -> None:
    """Forget the shared LLM scorer, so the next `configured_scorer()` reads the settings afresh (tests)."""
    global _configured_llm_scorer
    with _configured_lock:
        _configured_llm_scorer = None
