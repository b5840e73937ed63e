"""Creating, scoring and snoozing leads through leads.services.leads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError
from django.utils import timezone

from leads.models import Lead
from leads.scoring.rules import RULES_MODEL
from leads.scoring.types import ScoreResult
from leads.services.leads import lead_apply_score, lead_create, lead_score, lead_snooze, lead_unsnooze, lead_update
from leads.tests.factories import LeadFactory
from pipeline_whisperer.exceptions import Conflict, InvalidInput

pytestmark = pytest.mark.django_db

# What the rule scorer gives LeadFactory's defaults: size 18 + budget 16 + title 16 + timeline 7
# + industry 10 + one pain point 2, out of 100.
FACTORY_SCORE = 0.69


def test_lead_create_makes_a_raw_lead():
    lead = lead_create(lightfield_id="lf-new", company_name="Acme", contact_email="a@acme.example.com")
    assert (lead.status, lead.score, lead.persona) == (Lead.Status.RAW, None, "unknown")
    assert Lead.objects.get(lightfield_id="lf-new").contact_email == "a@acme.example.com"


def test_lead_create_with_a_known_lightfield_id_is_a_conflict():
    LeadFactory(lightfield_id="lf-taken")
    with pytest.raises(Conflict, match="lf-taken") as caught:
        lead_create(lightfield_id="lf-taken", company_name="Someone else")
    assert caught.value.extra == {"lightfield_id": "lf-taken"}
    assert Lead.objects.filter(lightfield_id="lf-taken").count() == 1


def test_lead_create_breaking_another_constraint_is_not_reported_as_a_conflict():
    with pytest.raises(IntegrityError, match="lead_company_name_not_empty"):
        lead_create(lightfield_id="lf-nameless", company_name="")


def test_lead_update_saves_the_changed_fields():
    lead = LeadFactory(contact_title="Engineer")
    lead_update(lead=lead, contact_title="CTO", timeline="immediate")
    lead.refresh_from_db()
    assert (lead.contact_title, lead.timeline) == ("CTO", "immediate")


def test_lead_score_stores_score_persona_model_and_reasons():
    lead = lead_score(lead=LeadFactory())
    lead.refresh_from_db()
    assert (lead.score, lead.persona, lead.scoring_model) == (FACTORY_SCORE, "mid_market", RULES_MODEL)
    assert len(lead.scoring_reasons) == 6
    assert lead.scored_at is not None


def test_lead_scoring_at_or_above_the_threshold_is_scored(settings):
    settings.OUTREACH_MIN_SCORE = FACTORY_SCORE
    lead = lead_score(lead=LeadFactory())
    assert Lead.objects.get(pk=lead.pk).status == Lead.Status.SCORED


def test_lead_scoring_below_the_threshold_is_disqualified(settings):
    settings.OUTREACH_MIN_SCORE = 0.7
    lead = lead_score(lead=LeadFactory())
    assert Lead.objects.get(pk=lead.pk).status == Lead.Status.DISQUALIFIED


def test_rescoring_a_disqualified_lead_above_a_lowered_threshold_qualifies_it(settings):
    settings.OUTREACH_MIN_SCORE = 0.9
    lead = lead_score(lead=LeadFactory())
    settings.OUTREACH_MIN_SCORE = 0.5
    lead_score(lead=lead)
    assert Lead.objects.get(pk=lead.pk).status == Lead.Status.SCORED


def test_rescoring_a_contacted_lead_keeps_its_status(settings):
    settings.OUTREACH_MIN_SCORE = 0.9
    lead = lead_score(lead=LeadFactory(status=Lead.Status.CONTACTED))
    assert Lead.objects.get(pk=lead.pk).status == Lead.Status.CONTACTED


def test_scoring_a_snoozed_lead_keeps_the_snooze_and_updates_the_status_to_return_to(settings):
    settings.OUTREACH_MIN_SCORE = 0.9
    lead = lead_snooze(lead=LeadFactory(status=Lead.Status.RAW))
    lead_score(lead=lead)
    lead.refresh_from_db()
    assert (lead.status, lead.status_before_snooze) == (Lead.Status.SNOOZED, Lead.Status.DISQUALIFIED)


def test_fallback_reason_is_stored_with_the_reasons():
    result = ScoreResult(
        score=0.8, persona="smb", reasons=("+80: rules",), model=RULES_MODEL, fallback_reason="timeout"
    )
    lead = lead_apply_score(lead=LeadFactory(), result=result)
    assert Lead.objects.get(pk=lead.pk).scoring_reasons == ["+80: rules", "fallback: timeout"]


def test_scoring_clears_an_earlier_failure():
    lead = LeadFactory(status=Lead.Status.FAILED, failure_reason="scorer crashed")
    lead_score(lead=lead)
    lead.refresh_from_db()
    assert (lead.status, lead.failure_reason) == (Lead.Status.SCORED, "")


@pytest.mark.parametrize(
    "status",
    [Lead.Status.RAW, Lead.Status.SCORED, Lead.Status.CONTACTED, Lead.Status.DISQUALIFIED, Lead.Status.FAILED],
)
def test_snooze_then_unsnooze_restores_the_previous_status(status):
    lead = LeadFactory(status=status)
    lead_snooze(lead=lead)
    assert (lead.status, lead.status_before_snooze) == (Lead.Status.SNOOZED, status)
    lead_unsnooze(lead=lead)
    assert (lead.status, lead.status_before_snooze, lead.snoozed_until) == (status, "", None)


def test_snooze_until_a_future_time_records_it():
    until = timezone.now() + timedelta(days=3)
    lead = lead_snooze(lead=LeadFactory(), until=until)
    assert Lead.objects.get(pk=lead.pk).snoozed_until == until


def test_snooze_until_a_past_time_is_invalid():
    lead = LeadFactory(status=Lead.Status.SCORED)
    with pytest.raises(InvalidInput, match="future") as caught:
        lead_snooze(lead=lead, until=timezone.now() - timedelta(minutes=1))
    assert "until" in caught.value.extra["errors"]
    assert Lead.objects.get(pk=lead.pk).status == Lead.Status.SCORED


def test_snoozing_a_converted_lead_is_a_conflict():
    lead = LeadFactory(status=Lead.Status.CONVERTED)
    with pytest.raises(Conflict, match="converted cannot be snoozed"):
        lead_snooze(lead=lead)
    assert Lead.objects.get(pk=lead.pk).status == Lead.Status.CONVERTED


def test_snoozing_a_snoozed_lead_is_a_conflict_and_keeps_the_status_to_return_to():
    lead = lead_snooze(lead=LeadFactory(status=Lead.Status.SCORED))
    with pytest.raises(Conflict, match="snoozed cannot be snoozed"):
        lead_snooze(lead=lead)
    assert Lead.objects.get(pk=lead.pk).status_before_snooze == Lead.Status.SCORED


def test_snoozing_from_a_stale_copy_acts_on_the_current_row():
    lead = LeadFactory(status=Lead.Status.SCORED)
    stale = Lead.objects.get(pk=lead.pk)
    Lead.objects.filter(pk=lead.pk).update(status=Lead.Status.CONVERTED)
    with pytest.raises(Conflict):
        lead_snooze(lead=stale)
    assert stale.status == Lead.Status.CONVERTED


def test_unsnoozing_a_lead_that_is_not_snoozed_is_a_conflict():
    lead = LeadFactory(status=Lead.Status.SCORED)
    with pytest.raises(Conflict, match="not snoozed"):
        lead_unsnooze(lead=lead)


def test_unsnoozing_without_a_recorded_status_returns_the_lead_to_raw():
    lead = LeadFactory(status=Lead.Status.SNOOZED, status_before_snooze="")
    assert lead_unsnooze(lead=lead).status == Lead.Status.RAW
