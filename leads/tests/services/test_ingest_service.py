"""Lead ingest from the API and from `leads.raw` (leads.services.ingest)."""

from __future__ import annotations

from typing import Any

import pytest

from leads.lightfield import parse_event
from leads.models import Lead, OutboxEvent
from leads.pipeline.events import outbox_event
from leads.pipeline.stages import ScorerStage
from leads.scoring.rules import RULES_MODEL
from leads.scoring.types import ScoreResult
from leads.services.ingest import ScoredEvent, facts_from_fields, lead_ingest_batch, lead_upsert_scored_batch
from leads.tests.factories import LeadFactory
from leads.topics import LEADS_RAW, LEADS_SCORED
from pipeline_whisperer.exceptions import PayloadTooLarge

pytestmark = pytest.mark.django_db


def _event(lightfield_id: str, name: str = "Acme", **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_type": "lead.created",
        "timestamp": "2025-03-01T10:00:00Z",
        "lightfield_id": lightfield_id,
        "company": {"name": name, "size": "11-50", "industry": "Fintech"},
        "contact": {"name": "Grace Hopper", "email": f"{lightfield_id}@example.com", "title": "CEO"},
        "metadata": {"budget_range": "10k-50k", "pain_points": ["tool sprawl"], "timeline": "1 month"},
    }
    event.update(changes)
    return event


def _result(score: float = 0.8, persona: str = "smb") -> ScoreResult:
    return ScoreResult(score=score, persona=persona, reasons=("+80: test",), model=RULES_MODEL)


# --- lead_ingest_batch ----------------------------------------------------------------------


def test_lead_ingest_batch_creates_raw_leads_and_queues_them_on_leads_raw_in_order():
    events = [_event("lf-b"), _event("lf-a"), _event("lf-c")]
    items = lead_ingest_batch(events=events)
    leads = {lead.lightfield_id: lead for lead in Lead.objects.all()}
    assert [(i.index, i.lightfield_id, i.created, i.lead_status, i.error) for i in items] == [
        (0, "lf-b", True, "raw", None),
        (1, "lf-a", True, "raw", None),
        (2, "lf-c", True, "raw", None),
    ]
    assert [item.lead_id for item in items] == [leads["lf-b"].pk, leads["lf-a"].pk, leads["lf-c"].pk]
    assert leads["lf-a"].raw_payload == events[1]
    rows = list(OutboxEvent.objects.order_by("id"))
    assert [(row.topic, row.key, row.event_type) for row in rows] == [
        (LEADS_RAW, "lf-b", "lead.created"),
        (LEADS_RAW, "lf-a", "lead.created"),
        (LEADS_RAW, "lf-c", "lead.created"),
    ]
    assert rows[0].payload == events[0]


def test_invalid_events_are_reported_by_index_and_do_not_stop_the_others():
    items = lead_ingest_batch(events=[_event("lf-ok-1"), {"lightfield_id": "lf-nameless"}, "junk", _event("lf-ok-2")])
    assert [(item.index, item.lightfield_id, item.error) for item in items] == [
        (0, "lf-ok-1", None),
        (1, None, "company.name is required"),
        (2, None, "the event must be a JSON object"),
        (3, "lf-ok-2", None),
    ]
    assert set(Lead.objects.values_list("lightfield_id", flat=True)) == {"lf-ok-1", "lf-ok-2"}
    assert OutboxEvent.objects.count() == 2


def test_a_batch_of_only_invalid_events_writes_nothing():
    items = lead_ingest_batch(events=[{}, []])
    assert [item.error is not None for item in items] == [True, True]
    assert not Lead.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_a_later_duplicate_in_the_batch_wins():
    items = lead_ingest_batch(events=[_event("lf-dup", name="First"), _event("lf-dup", name="Second")])
    lead = Lead.objects.get()
    assert lead.company_name == "Second"
    assert [(item.index, item.lead_id) for item in items] == [(0, lead.pk), (1, lead.pk)]
    assert OutboxEvent.objects.get().payload["company"]["name"] == "Second"


def test_ingesting_a_known_lead_updates_its_facts_but_not_its_pipeline_state():
    existing = LeadFactory(
        lightfield_id="lf-known", company_name="Old", status=Lead.Status.CONTACTED, score=0.9, outreach_count=1
    )
    [item] = lead_ingest_batch(events=[_event("lf-known", name="New")])
    assert (item.created, item.lead_id, item.lead_status) == (False, existing.pk, "contacted")
    lead = Lead.objects.get(pk=existing.pk)
    assert (lead.company_name, lead.company_size, lead.contact_title) == ("New", "11-50", "CEO")
    assert (lead.status, lead.score, lead.outreach_count) == (Lead.Status.CONTACTED, 0.9, 1)
    assert lead.updated_at > existing.updated_at


def test_a_batch_over_the_limit_is_refused_whole(settings):
    settings.INGEST_MAX_BATCH = 2
    with pytest.raises(PayloadTooLarge, match="at most 2 events") as caught:
        lead_ingest_batch(events=[_event("lf-1"), _event("lf-2"), _event("lf-3")])
    assert caught.value.extra == {"max_batch": 2}
    assert not Lead.objects.exists()


def test_an_ingested_lead_is_scored_by_the_scorer_stage_from_its_queued_event(settings):
    settings.OPENAI_API_KEY = ""
    [item] = lead_ingest_batch(events=[_event("lf-flow")])
    assert ScorerStage().process(outbox_event(OutboxEvent.objects.get())) == "applied"
    lead = Lead.objects.get()
    assert lead.pk == item.lead_id
    assert (lead.status, lead.persona, lead.scoring_model) == (Lead.Status.SCORED, "smb", RULES_MODEL)
    scored = OutboxEvent.objects.get(topic=LEADS_SCORED)
    assert scored.payload["lead_id"] == lead.pk


# --- lead_upsert_scored_batch ---------------------------------------------------------------


def _upsert_scored(*, fields: dict[str, Any], result: ScoreResult) -> Lead:
    ids = lead_upsert_scored_batch(entries=[ScoredEvent(fields, result)])
    return Lead.objects.get(pk=ids[fields["lightfield_id"]])


def test_a_batch_applies_two_events_of_one_lead_in_order_and_emits_one_lead_scored_each():
    first, second = parse_event(_event("lf-twice")), parse_event(_event("lf-twice", name="Renamed"))
    ids = lead_upsert_scored_batch(
        entries=[ScoredEvent(first, _result(score=0.3)), ScoredEvent(second, _result(score=0.9))]
    )
    stored = Lead.objects.get(lightfield_id="lf-twice")
    assert (stored.pk, stored.company_name, stored.score, stored.status) == (ids["lf-twice"], "Renamed", 0.9, "scored")
    emitted = [row.payload for row in OutboxEvent.objects.filter(topic=LEADS_SCORED).order_by("id")]
    assert [(p["lead_id"], p["score"], p["status"]) for p in emitted] == [
        (stored.pk, 0.3, "disqualified"),
        (stored.pk, 0.9, "scored"),
    ]


def test_lead_upsert_scored_creates_a_scored_lead_and_emits_lead_scored():
    lead = _upsert_scored(fields=parse_event(_event("lf-new")), result=_result())
    stored = Lead.objects.get(pk=lead.pk)
    assert (stored.company_name, stored.score, stored.persona, stored.status) == ("Acme", 0.8, "smb", "scored")
    assert stored.scoring_reasons == ["+80: test"]
    row = OutboxEvent.objects.get()
    assert (row.topic, row.key, row.payload["lead_id"], row.payload["force"]) == (
        LEADS_SCORED,
        "lf-new",
        lead.pk,
        False,
    )


def test_lead_upsert_scored_applies_a_changed_event_to_a_known_lead():
    LeadFactory(lightfield_id="lf-known", company_name="Old", raw_payload={"old": True})
    lead = _upsert_scored(fields=parse_event(_event("lf-known", name="New")), result=_result())
    stored = Lead.objects.get(pk=lead.pk)
    assert (stored.company_name, stored.contact_email, stored.budget_range) == (
        "New",
        "lf-known@example.com",
        "10k-50k",
    )
    assert stored.raw_payload["company"]["name"] == "New"


def test_lead_upsert_scored_with_the_same_event_keeps_the_facts_and_scores_again():
    event = _event("lf-same")
    lead_ingest_batch(events=[event])
    Lead.objects.filter(lightfield_id="lf-same").update(contact_title="Edited by staff")
    lead = _upsert_scored(fields=parse_event(event), result=_result(score=0.3, persona="startup"))
    stored = Lead.objects.get(pk=lead.pk)
    assert stored.contact_title == "Edited by staff"
    assert (stored.score, stored.persona, stored.status) == (0.3, "startup", Lead.Status.DISQUALIFIED)


def test_facts_from_fields_carries_what_the_scorer_reads():
    facts = facts_from_fields(parse_event(_event("lf-facts")))
    assert (facts.company_name, facts.company_size, facts.company_industry) == ("Acme", "11-50", "Fintech")
    assert (facts.contact_title, facts.budget_range, facts.timeline) == ("CEO", "10k-50k", "1 month")
    assert facts.pain_points == ("tool sprawl",)
