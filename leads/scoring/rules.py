"""The deterministic, explainable rule-based scorer.

Each rule adds points and says why; the score is the points over the maximum, so the stored
reasons add up to the score. Pure: it reads a `LeadFacts` and touches neither the database
nor the settings.
"""

from __future__ import annotations

from collections.abc import Iterable

from leads.scoring.types import LeadFacts, ScoreResult

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
