"""POST /api/v1/leads/{id}/rescore and /force-outreach: the actions that put a lead back on
`leads.scored`.

These tests never commit, so the in-process bus does not run: they check the lead and the
`leads.scored` outbox row the request leaves; what the outreach stage makes of it is tested end
to end in tests/test_pipeline_inprocess.py.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from leads.models import Lead, OutboxEvent, Persona
from leads.scoring.rules import RULES_MODEL, score_by_rules
from leads.services.leads import lead_facts
from leads.tests.factories import LeadFactory, OutreachFactory
from leads.topics import LEADS_SCORED
from pipeline_whisperer.tests.support import assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _rules_scorer(settings) -> None:
    settings.OPENAI_API_KEY = ""


def rescore(client, lead: Lead, **headers: str):
    return client.post(f"/api/v1/leads/{lead.pk}/rescore", **headers)


def force_outreach(client, lead: Lead, **headers: str):
    return client.post(f"/api/v1/leads/{lead.pk}/force-outreach", **headers)


def strong_lead(**fields) -> Lead:
    """A lead the rules score well above OUTREACH_MIN_SCORE (0.88)."""
    defaults = {
        "company_size": "201-1000",
        "budget_range": "100k-500k",
        "contact_title": "CTO",
        "timeline": "immediate",
        "company_industry": "Software",
        "pain_points": ["manual data entry", "tool sprawl"],
    }
    return LeadFactory(**{**defaults, **fields})


def weak_lead(**fields) -> Lead:
    """A lead the rules score far below OUTREACH_MIN_SCORE (0.08)."""
    defaults = {
        "company_size": "1-10",
        "budget_range": "<10k",
        "contact_title": "Intern",
        "timeline": "",
        "company_industry": "Government",
        "pain_points": [],
    }
    return LeadFactory(**{**defaults, **fields})


def scored_rows() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(topic=LEADS_SCORED).order_by("id"))


# --- Rescore ----------------------------------------------------------------------------


def test_rescore_answers_202_with_the_lead_scored_by_the_rules(api_client):
    lead = strong_lead()
    response = rescore(api_client, lead)
    assert response.status_code == 202, response.content
    expected = score_by_rules(lead_facts(lead))
    body = response.json()
    assert (body["id"], body["score"], body["persona"], body["scoring_model"]) == (
        lead.pk,
        expected.score,
        expected.persona,
        RULES_MODEL,
    )
    assert body["scoring_reasons"] == list(expected.reasons)


def test_rescore_stores_the_score_and_its_reasons(api_client):
    lead = strong_lead()
    rescore(api_client, lead)
    lead.refresh_from_db()
    assert lead.score == pytest.approx(0.88)
    assert lead.persona == Persona.MID_MARKET
    assert lead.scoring_reasons == list(score_by_rules(lead_facts(lead)).reasons)
    assert "+20: title 'CTO' is C-level or founder" in lead.scoring_reasons
    assert lead.scored_at is not None


def test_rescore_qualifies_a_raw_lead_above_the_threshold(api_client):
    lead = strong_lead(status=Lead.Status.RAW)
    assert rescore(api_client, lead).json()["status"] == "scored"


def test_rescore_disqualifies_a_lead_below_the_threshold(api_client):
    lead = weak_lead(status=Lead.Status.SCORED, score=0.9)
    body = rescore(api_client, lead).json()
    assert (body["status"], body["score"]) == ("disqualified", 0.08)


def test_rescore_qualifies_a_disqualified_lead_whose_profile_was_edited(api_client):
    lead = weak_lead(status=Lead.Status.DISQUALIFIED, score=0.08)
    edit = {"contact_title": "CEO", "company_size": "1000+", "budget_range": "500k+", "timeline": "immediate"}
    assert api_client.patch(f"/api/v1/leads/{lead.pk}", edit, format="json").status_code == 200
    body = rescore(api_client, lead).json()
    assert (body["status"], body["score"], body["persona"]) == ("scored", 0.8, "enterprise")


def test_rescore_leaves_a_contacted_lead_contacted(api_client):
    lead = weak_lead(status=Lead.Status.CONTACTED, score=0.9)
    body = rescore(api_client, lead).json()
    assert (body["status"], body["score"]) == ("contacted", 0.08)


def test_rescore_of_a_snoozed_lead_keeps_the_snooze_and_the_new_status_for_later(api_client):
    lead = strong_lead(status=Lead.Status.SNOOZED, status_before_snooze=Lead.Status.DISQUALIFIED)
    assert rescore(api_client, lead).json()["status"] == "snoozed"
    lead.refresh_from_db()
    assert lead.status_before_snooze == Lead.Status.SCORED


def test_rescore_queues_the_lead_on_leads_scored(api_client):
    lead = strong_lead(lightfield_id="lf-rescored", status=Lead.Status.RAW)
    rescore(api_client, lead, HTTP_X_REQUEST_ID="rescore-1")
    [row] = scored_rows()
    assert (row.key, row.event_type, row.correlation_id, row.published_at) == (
        "lf-rescored",
        "lead.scored",
        "rescore-1",
        None,
    )
    assert row.payload == {
        "lead_id": lead.pk,
        "lightfield_id": "lf-rescored",
        "score": 0.88,
        "persona": "mid_market",
        "status": "scored",
        "force": False,
    }


def test_rescore_of_a_disqualified_lead_is_queued_too(api_client):
    lead = weak_lead()
    rescore(api_client, lead)
    assert [row.payload["status"] for row in scored_rows()] == ["disqualified"]


def test_rescore_of_an_unknown_lead_is_404(api_client):
    response = api_client.post("/api/v1/leads/999999/rescore")
    assert_problem(response, 404)
    assert not OutboxEvent.objects.exists()


def test_rescore_needs_a_write_key(read_client):
    assert_problem(rescore(read_client, strong_lead()), 403)
    assert not OutboxEvent.objects.exists()


# --- Force outreach ---------------------------------------------------------------------


def test_force_outreach_answers_202_with_the_lead(api_client):
    lead = strong_lead(status=Lead.Status.SCORED, score=0.88)
    response = force_outreach(api_client, lead)
    assert response.status_code == 202, response.content
    assert (response.json()["id"], response.json()["status"]) == (lead.pk, "scored")


def test_force_outreach_queues_the_lead_on_leads_scored_with_force(api_client):
    lead = weak_lead(lightfield_id="lf-forced", status=Lead.Status.DISQUALIFIED, score=0.08, persona=Persona.STARTUP)
    force_outreach(api_client, lead, HTTP_X_REQUEST_ID="force-1")
    [row] = scored_rows()
    assert (row.key, row.event_type, row.correlation_id) == ("lf-forced", "lead.scored", "force-1")
    assert row.payload == {
        "lead_id": lead.pk,
        "lightfield_id": "lf-forced",
        "score": 0.08,
        "persona": "startup",
        "status": "disqualified",
        "force": True,
    }


def test_force_outreach_leaves_the_lead_as_it_was(api_client):
    lead = weak_lead(status=Lead.Status.DISQUALIFIED, score=0.08)
    force_outreach(api_client, lead)
    lead.refresh_from_db()
    assert (lead.status, lead.score) == (Lead.Status.DISQUALIFIED, 0.08)


@pytest.mark.parametrize(
    "status", [Lead.Status.RAW, Lead.Status.DISQUALIFIED, Lead.Status.CONTACTED, Lead.Status.FAILED]
)
def test_force_outreach_is_allowed_whatever_the_score_or_status(api_client, status):
    lead = weak_lead(status=status, score=0.1)
    assert force_outreach(api_client, lead).status_code == 202
    assert len(scored_rows()) == 1


def test_force_outreach_is_allowed_for_a_lead_written_to_before(api_client):
    lead = strong_lead(status=Lead.Status.CONTACTED, score=0.88, outreach_count=1)
    OutreachFactory(lead=lead)
    assert force_outreach(api_client, lead).status_code == 202


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"unsubscribed_at": timezone.now(), "status": Lead.Status.CONTACTED}, "the lead unsubscribed"),
        ({"bounced_at": timezone.now(), "status": Lead.Status.CONTACTED}, "mail to the lead bounced"),
        ({"status": Lead.Status.SNOOZED, "status_before_snooze": Lead.Status.SCORED}, "the lead is snoozed"),
        ({"contact_email": "", "status": Lead.Status.SCORED}, "the lead has no email address we could send to"),
    ],
    ids=["unsubscribed", "bounced", "snoozed", "no-email"],
)
def test_force_outreach_is_409_for_a_lead_that_may_not_be_written_to(api_client, fields, reason):
    lead = strong_lead(score=0.88, **fields)
    body = assert_problem(force_outreach(api_client, lead, HTTP_X_REQUEST_ID="force-409"), 409)
    assert body["detail"] == f"Cannot write to this lead: {reason}."
    assert body["correlation_id"] == "force-409"
    assert not OutboxEvent.objects.exists()


def test_force_outreach_of_an_unknown_lead_is_404(api_client):
    assert_problem(api_client.post("/api/v1/leads/999999/force-outreach"), 404)


def test_force_outreach_needs_a_write_key(read_client):
    assert_problem(force_outreach(read_client, strong_lead()), 403)
    assert not OutboxEvent.objects.exists()
