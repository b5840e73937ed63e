"""Eligibility through the stages: leads ingested by the scorer stage and scheduled by the outreach
stage, one person under several lightfield_ids, suppressed domains and the per-company cap."""

from __future__ import annotations

import random
from typing import Any

import pytest

from leads.models import Lead, OutboxEvent, Outreach, Suppression
from leads.pipeline.events import Event, encode, outbox_event
from leads.pipeline.stages import OutreachStage, ScorerStage
from leads.services.suppression import suppression_add
from leads.tests.factories import VariantFactory
from leads.topics import LEADS_RAW, LEADS_SCORED

pytestmark = pytest.mark.django_db

ANOTHER_LEAD = "the address was written to within 90 days (under another lead)"


@pytest.fixture(autouse=True)
def stage_settings(settings: Any) -> Any:
    settings.OUTREACH_MIN_SCORE = 0.1
    settings.OPENAI_API_KEY = ""
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    settings.OUTREACH_SEND_WINDOW = "mon-sun 00:00-24:00"
    settings.OUTREACH_MAX_PER_COMPANY_DOMAIN = 2
    VariantFactory()
    return settings


def _raw(lightfield_id: str, email: str) -> Event:
    payload = {
        "event_type": "lead.created",
        "timestamp": "2026-11-30T10:00:00Z",
        "lightfield_id": lightfield_id,
        "company": {"name": "Acme", "size": "201-1000", "industry": "Software"},
        "contact": {"name": "Grace Hopper", "email": email, "title": "CTO"},
        "metadata": {"budget_range": "100k-500k", "pain_points": ["low reply rates"]},
    }
    return Event(topic=LEADS_RAW, key=lightfield_id, value=encode(payload), event_id=f"raw-{lightfield_id}")


def _ingest_and_schedule(*batches: list[tuple[str, str]]) -> None:
    """Each batch of (lightfield_id, email) through the scorer stage, then its lead.scored events
    through the outreach stage, as one batch each."""
    scorer, outreach = ScorerStage(), OutreachStage(random.Random(3))
    for batch in batches:
        seen = set(OutboxEvent.objects.filter(topic=LEADS_SCORED).values_list("pk", flat=True))
        assert scorer.process_batch([_raw(lightfield_id, email) for lightfield_id, email in batch]) == [
            "applied"
        ] * len(batch)
        scored = OutboxEvent.objects.filter(topic=LEADS_SCORED).exclude(pk__in=seen).order_by("pk")
        assert set(outreach.process_batch([outbox_event(row) for row in scored])) == {"applied"}


def _reasons() -> dict[str, str]:
    return dict(Lead.objects.values_list("lightfield_id", "not_contacted_reason"))


SAME_PERSON = [
    ("lf-grace-1", "grace@navy.example"),
    ("lf-grace-2", "Grace@Navy.example"),
    ("lf-grace-3", "grace@NAVY.EXAMPLE"),
]


def test_one_person_under_three_lightfield_ids_in_one_batch_is_scheduled_once():
    _ingest_and_schedule(SAME_PERSON)
    [outreach] = Outreach.objects.all()
    assert (outreach.status, outreach.recipient_key) == (Outreach.Status.SCHEDULED, "grace@navy.example")
    assert outreach.lead.lightfield_id == "lf-grace-1"
    assert _reasons() == {"lf-grace-1": "", "lf-grace-2": ANOTHER_LEAD, "lf-grace-3": ANOTHER_LEAD}


def test_one_person_under_three_lightfield_ids_in_separate_batches_is_scheduled_once():
    _ingest_and_schedule(*([lead] for lead in SAME_PERSON))
    assert Outreach.objects.get().lead.lightfield_id == "lf-grace-1"
    assert _reasons() == {"lf-grace-1": "", "lf-grace-2": ANOTHER_LEAD, "lf-grace-3": ANOTHER_LEAD}


def test_a_suppressed_domain_gets_no_outreach():
    suppression_add(kind=Suppression.Kind.DOMAIN, value="Blocked.example", reason=Suppression.Reason.COMPLAINT)
    _ingest_and_schedule(
        [("lf-blocked-1", "a@blocked.example"), ("lf-open", "b@open.example")], [("lf-blocked-2", "c@blocked.example")]
    )
    assert list(Outreach.objects.values_list("lead__lightfield_id", flat=True)) == ["lf-open"]
    reason = "the domain blocked.example is suppressed (complaint)"
    assert _reasons() == {"lf-blocked-1": reason, "lf-open": "", "lf-blocked-2": reason}


def test_at_most_the_company_cap_of_people_at_one_company_and_free_mail_is_not_a_company():
    company = [(f"lf-acme-{n}", f"person{n}@acme.example") for n in range(4)]
    free_mail = [(f"lf-gmail-{n}", f"person{n}@gmail.com") for n in range(4)]
    _ingest_and_schedule(company[:3] + free_mail[:2], company[3:] + free_mail[2:])
    scheduled = set(Outreach.objects.values_list("lead__lightfield_id", flat=True))
    assert scheduled == {"lf-acme-0", "lf-acme-1"} | {lightfield_id for lightfield_id, _ in free_mail}
    capped = "2 people at acme.example were written to within 90 days (OUTREACH_MAX_PER_COMPANY_DOMAIN)"
    assert {_reasons()[f"lf-acme-{n}"] for n in (2, 3)} == {capped}
