"""Privacy requests through leads.services.privacy: erasure leaves no trace of the person in any
column of any table, keeps the bandit's counts, suppresses the address by hash; export finds all."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from leads.models import DeadLetter, EngagementEvent, Lead, OutboxEvent, Outreach, PrivacyRequest, Suppression
from leads.pipeline.events import outbox_event
from leads.pipeline.stages import FeedbackStage, Outcome, ScorerStage
from leads.services.eligibility import Eligibility
from leads.services.privacy import privacy_erase, privacy_export, privacy_reapply
from leads.services.suppression import value_hash
from leads.tests.factories import LeadFactory
from leads.tests.privacy_support import (
    ADDRESS,
    LIGHTFIELD_IDS,
    NAME,
    NEEDLES,
    holders,
    person_everywhere,
    searched_columns,
)
from leads.topics import LEADS_RAW, OUTREACH_EVENTS
from pipeline_whisperer.exceptions import InvalidInput

pytestmark = pytest.mark.django_db


def test_person_is_found_in_every_kind_of_table_before_erasure():
    person_everywhere()
    found = holders(ADDRESS)
    expected = {
        "leads.Lead.contact_email", "leads.Lead.raw_payload", "leads.Outreach.to_email", "leads.Outreach.body",
        "leads.EngagementEvent.payload", "leads.OutboxEvent.payload", "leads.DeadLetter.value",
        "leads.Suppression.value",
    }  # fmt: skip
    assert expected <= set(found)
    assert {"leads.Outreach.html_body", "leads.DeadLetter.error", "leads.Suppression.note"} <= set(holders(NAME))
    assert "leads.Outreach.subject" in holders("Philippa")


def test_erase_leaves_no_column_of_any_table_holding_the_address_or_the_name():
    person = person_everywhere()
    call_command("privacy", "erase", "--email", "  Philippa.QUARRINGTON@Northwind-Traders.com ", "--yes", verbosity=0)
    assert searched_columns() > 100  # every app's tables, not only ours
    for needle in (*NEEDLES, *LIGHTFIELD_IDS):
        assert holders(needle) == [], needle
    other = Lead.objects.get(pk=person.other.pk)
    assert (other.contact_name, other.contact_email) == ("Ada Lovelace", "ada@example.com")


def test_erase_keeps_company_facts_score_status_and_the_variants_counts():
    person = person_everywhere()
    before = person.counters()
    privacy_erase(email=ADDRESS, requested_by="test")
    assert person.counters() == before
    lead = Lead.objects.get(pk=person.leads[0].pk)
    assert (lead.company_name, lead.company_size, lead.status, lead.score) == (
        "Northwind Traders", "51-200", Lead.Status.CONVERTED, 0.91,
    )  # fmt: skip
    assert lead.contact_email == lead.contact_name == lead.contact_linkedin == lead.contact_title == ""
    assert lead.lightfield_id.startswith("erased-")
    assert lead.raw_payload["contact"] == {}
    assert lead.raw_payload["lightfield_id"] == lead.lightfield_id
    converted = Outreach.objects.get(pk=person.outreach[0].pk)
    assert (converted.status, converted.reward, converted.variant_id) == ("converted", "success", person.variant.pk)
    assert converted.to_email == converted.subject == converted.body == converted.html_body == "[erased]"
    assert converted.recipient_domain == "northwind-traders.com"


def test_erase_cancels_outreach_not_yet_sent():
    person = person_everywhere()
    report = privacy_erase(email=ADDRESS, requested_by="test")
    scheduled = Outreach.objects.get(pk=person.outreach[2].pk)
    assert scheduled.status == Outreach.Status.CANCELLED
    assert scheduled.cancelled_at is not None
    assert report.counts["outreach_cancelled"] == 1


def test_erase_deletes_published_outbox_rows_and_rewrites_pending_ones():
    person_everywhere()
    published = OutboxEvent.objects.filter(published_at__isnull=False, key=LIGHTFIELD_IDS[0]).count()
    pending = OutboxEvent.objects.filter(published_at__isnull=True).count()
    report = privacy_erase(email=ADDRESS, requested_by="test")
    assert report.counts["outbox_deleted"] == published == 1
    assert report.counts["outbox_redacted"] == pending == 3
    assert not OutboxEvent.objects.filter(published_at__isnull=False).exists()
    engagement = OutboxEvent.objects.get(topic=OUTREACH_EVENTS)
    assert engagement.payload["payload"] == {"erased": True}
    assert engagement.payload["event_id"] == "open-1"


def test_erased_pending_rows_still_run_through_their_stages_and_stay_erased(settings):
    person = person_everywhere()
    before = person.counters()
    privacy_erase(email=ADDRESS, requested_by="test")
    raw = [outbox_event(row) for row in OutboxEvent.objects.pending().filter(topic=LEADS_RAW)]
    assert ScorerStage().process_batch(raw) == [Outcome.APPLIED, Outcome.APPLIED]
    events = [outbox_event(row) for row in OutboxEvent.objects.pending().filter(topic=OUTREACH_EVENTS)]
    assert FeedbackStage().process_batch(events) == [Outcome.APPLIED]
    assert not DeadLetter.objects.filter(event_id__in=[e.event_id for e in raw + events]).exists()
    assert Lead.objects.filter(pk__in=[lead.pk for lead in person.leads], contact_email="").count() == 3
    assert EngagementEvent.objects.get(event_id="open-1").payload == {"erased": True}
    assert person.counters() == before  # an open is not a reward
    for needle in NEEDLES:
        assert holders(needle) == [], needle


def test_dead_letters_stay_with_their_values_redacted():
    person_everywhere()
    privacy_erase(email=ADDRESS, requested_by="test")
    json_letter, text_letter = DeadLetter.objects.get(event_id="dl-1"), DeadLetter.objects.get(event_id="dl-2")
    assert json.loads(json_letter.value)["contact"] == {}
    assert json_letter.key.startswith("erased-")
    assert text_letter.value == "[erased]"
    assert json_letter.status == text_letter.status == DeadLetter.Status.PENDING


def test_erased_address_is_suppressed_by_hash_and_a_new_lead_with_it_is_refused(settings):
    settings.OUTREACH_ENABLED = True
    person_everywhere()
    privacy_erase(email=ADDRESS, requested_by="test")
    entry = Suppression.objects.get(kind="address", value_hash=value_hash(ADDRESS))
    assert (entry.value, entry.reason, entry.source, entry.note) == ("", "erased", "privacy", "")
    newcomer = LeadFactory(contact_email=ADDRESS.upper().replace("NORTHWIND-TRADERS.COM", "northwind-traders.com"))
    newcomer.status, newcomer.score = Lead.Status.SCORED, 0.99
    refusal = Eligibility([newcomer], now=timezone.now()).refusal(newcomer)
    assert refusal == "the address is suppressed (erased)"


def test_erase_writes_an_audit_row_with_the_hash_and_the_counts():
    person_everywhere()
    report = privacy_erase(email=ADDRESS, requested_by="ops@example.org")
    audit = PrivacyRequest.objects.get(pk=report.request_id)
    assert (audit.kind, audit.subject_hash, audit.requested_by) == ("erase", value_hash(ADDRESS), "ops@example.org")
    assert audit.summary["leads"] == 3
    assert audit.summary["outreach"] == 3
    assert audit.summary["engagement_events"] == 2
    assert audit.summary["dead_letters"] == 2
    assert audit.summary["suppressions_replaced"] == 1


def test_erasing_an_address_that_matches_nothing_still_suppresses_and_audits_it():
    report = privacy_erase(email="Nobody.Yet@Example.com", requested_by="test")
    assert set(report.counts.values()) == {0}
    assert Suppression.objects.filter(value_hash=value_hash("nobody.yet@example.com"), reason="erased").exists()
    assert PrivacyRequest.objects.filter(kind="erase", subject_hash=report.subject_hash).exists()


def test_erasing_twice_finds_nothing_more_the_second_time():
    person_everywhere()
    privacy_erase(email=ADDRESS, requested_by="test")
    again = privacy_erase(email=ADDRESS, requested_by="test")
    assert set(again.counts.values()) == {0}


def test_malformed_address_is_invalid_input_and_changes_nothing():
    with pytest.raises(InvalidInput, match="is not a valid email address"):
        privacy_erase(email="philippa at northwind", requested_by="test")
    assert not PrivacyRequest.objects.exists()
    assert not Suppression.objects.exists()


def test_export_returns_everything_held_about_the_person_as_json():
    person = person_everywhere()
    exported = privacy_export(email=ADDRESS.upper(), requested_by="test")
    assert json.loads(json.dumps(exported)) == exported
    assert exported["email"] == ADDRESS
    assert sorted(lead["lightfield_id"] for lead in exported["leads"]) == sorted(LIGHTFIELD_IDS)
    assert {o["id"] for o in exported["outreach"]} == {o.pk for o in person.outreach}
    assert {o["subject"] for o in exported["outreach"]} == {"Philippa, a question"}
    assert len(exported["engagement_events"]) == 2
    assert [entry["reason"] for entry in exported["suppressions"]] == ["unsubscribed"]
    assert len(exported["outbox_events"]) == 4
    assert {letter["event_id"] for letter in exported["dead_letters"]} == {"dl-1", "dl-2"}
    assert all(lead["contact_email"].lower() == ADDRESS for lead in exported["leads"])
    assert person.other.lightfield_id not in json.dumps(exported)


def test_export_is_audited_by_hash_only():
    person_everywhere()
    privacy_export(email=ADDRESS, requested_by="test")
    audit = PrivacyRequest.objects.get(kind="export")
    assert audit.subject_hash == value_hash(ADDRESS)
    assert ADDRESS not in json.dumps(audit.summary)
    assert audit.summary["leads"] == 3


def test_reapply_erases_again_what_a_restored_backup_brought_back():
    person_everywhere()
    privacy_erase(email=ADDRESS, requested_by="test")
    # As if an older backup were restored: the person and their unhashed suppression are back.
    Suppression.objects.all().delete()
    LeadFactory(lightfield_id="lf-restored", contact_name=NAME, contact_email=ADDRESS)
    reports = privacy_reapply(requested_by="test")
    assert [report.counts["leads"] for report in reports] == [1]
    assert holders(ADDRESS) == []
    assert Suppression.objects.filter(value_hash=value_hash(ADDRESS), reason="erased").exists()


def test_reapply_restores_the_hashed_suppression_of_someone_no_longer_held():
    privacy_erase(email="gone@example.com", requested_by="test")
    Suppression.objects.all().delete()
    assert privacy_reapply(requested_by="test") == []
    assert Suppression.objects.filter(value_hash=value_hash("gone@example.com"), reason="erased").exists()
