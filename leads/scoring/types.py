"""What a scorer reads and what it answers, shared by the rule and the model scorers.

A scorer is any callable `LeadFacts -> ScoreResult`. Plain frozen dataclasses: no database, no
settings, so every layer may import them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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


class LlmUnavailable(Exception):
    """The model gave no usable answer (the breaker is open, or every attempt failed); the
    message says why, in words safe to log. Here, not beside the client, so that callers can
    catch it without importing the openai SDK."""
