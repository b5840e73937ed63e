"""The rule-based scorer: deterministic, explainable, and its reasons add up to the score."""

from __future__ import annotations

import re

import pytest

from leads.scoring.rules import MAX_POINTS, RULES_MODEL, persona_for, score_by_rules
from leads.scoring.types import LeadFacts

STRONG_LEAD = LeadFacts(
    company_name="Acme",
    company_size="1000+",
    company_industry="Software",
    contact_title="Chief Revenue Officer",
    budget_range="500k+",
    timeline="immediate",
    pain_points=("a", "b", "c", "d", "e", "f"),
)
TYPICAL_LEAD = LeadFacts(
    company_name="Globex",
    company_size="51-200",
    company_industry="Manufacturing",
    contact_title="Engineering Manager",
    budget_range="10k-50k",
    timeline="6 months",
    pain_points=("manual data entry",),
)


def _points(reasons: tuple[str, ...]) -> int:
    total = 0
    for reason in reasons:
        match = re.match(r"\+(\d+): ", reason)
        assert match is not None, reason
        total += int(match.group(1))
    return total


def test_rule_scorer_is_deterministic():
    assert score_by_rules(TYPICAL_LEAD) == score_by_rules(TYPICAL_LEAD)


@pytest.mark.parametrize("facts", [STRONG_LEAD, TYPICAL_LEAD], ids=["strong", "typical"])
def test_rule_scorer_reasons_add_up_to_the_score(facts):
    result = score_by_rules(facts)
    assert result.score == round(_points(result.reasons) / MAX_POINTS, 4)


def test_rule_scorer_gives_the_strongest_lead_full_marks():
    result = score_by_rules(STRONG_LEAD)
    assert result.score == 1.0
    assert result.model == RULES_MODEL


def test_rule_scorer_scores_a_typical_lead_by_its_rules():
    result = score_by_rules(TYPICAL_LEAD)
    # size 18 + budget 10 + manager 10 + timeline 4 + one pain point 2; Manufacturing is no target industry.
    assert result.score == round(44 / MAX_POINTS, 4)
    assert len(result.reasons) == 5


def test_pain_point_points_are_capped():
    many = score_by_rules(LeadFacts(company_name="A", pain_points=tuple("abcdefghij")))
    five = score_by_rules(LeadFacts(company_name="A", pain_points=tuple("abcde")))
    assert many.score == five.score


def test_empty_pain_points_earn_nothing():
    assert score_by_rules(LeadFacts(company_name="A", pain_points=("", ""))).score == 0.0


def test_seniority_takes_the_first_matching_level():
    result = score_by_rules(LeadFacts(company_name="A", contact_title="CTO and Engineering Manager"))
    assert result.reasons == ("+20: title 'CTO and Engineering Manager' is C-level or founder",)


def test_industry_match_ignores_case():
    assert score_by_rules(LeadFacts(company_name="A", company_industry="FINTECH")).score > 0


def test_empty_lead_scores_zero_with_persona_unknown():
    result = score_by_rules(LeadFacts(company_name="Nobody"))
    assert (result.score, result.persona, result.reasons) == (0.0, "unknown", ())


@pytest.mark.parametrize(
    ("size", "budget", "persona"),
    [
        ("1000+", "", "enterprise"),
        ("11-50", "500k+", "enterprise"),
        ("201-1000", "", "mid_market"),
        ("51-200", "<10k", "mid_market"),
        ("11-50", "", "smb"),
        ("1-10", "<10k", "individual"),
        ("1-10", "10k-50k", "startup"),
        ("1-10", "", "startup"),
        ("", "100k-500k", "unknown"),
        ("", "", "unknown"),
    ],
)
def test_persona_follows_company_size_then_budget(size, budget, persona):
    assert persona_for(LeadFacts(company_name="A", company_size=size, budget_range=budget)) == persona
