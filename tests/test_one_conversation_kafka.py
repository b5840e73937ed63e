"""One person, one conversation, in the production shape: a real Kafka-protocol broker (tansu),
`run_pipeline all` (relay, scorer, outreach, dispatch, feedback), real PostgreSQL and a real SMTP
server. The same person arriving under three lightfield_ids, through the API and straight on
`leads.raw`, is mailed once; a lead at a suppressed domain is mailed never."""

from __future__ import annotations

from typing import Any

import pytest

from leads.models import Lead, Outreach
from leads.services.suppression import suppression_add
from tests.pipeline_support import produce_raw, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

PERSON = ("Grace.Hopper@Navy-Labs.example", "grace.hopper@navy-labs.EXAMPLE", "GRACE.HOPPER@navy-labs.example")


def _lead_created(lightfield_id: str, email: str) -> dict[str, Any]:
    """A lead the rule scorer qualifies: a large company, a big budget, a senior title, soon."""
    return {
        "event_type": "lead.created",
        "timestamp": "2026-11-30T10:00:00Z",
        "lightfield_id": lightfield_id,
        "company": {"name": "Navy Labs", "size": "1000+", "industry": "Software"},
        "contact": {"name": "Grace Hopper", "email": email, "title": "VP Engineering"},
        "metadata": {"budget_range": "500k+", "timeline": "immediate", "pain_points": ["low reply rates"]},
    }


def _settled(lightfield_ids: list[str]) -> bool:
    """Every lead scored and either written to or told why not."""
    leads = Lead.objects.filter(lightfield_id__in=lightfield_ids, scored_at__isnull=False)
    decided = leads.filter(outreach__isnull=False) | leads.exclude(not_contacted_reason="")
    return decided.distinct().count() == len(lightfield_ids)


def test_one_person_under_three_lightfield_ids_from_the_api_and_kafka_is_mailed_once(
    api_client, pipeline, broker, smtp_sink, experiment
):
    suppression_add(kind="domain", value="Blocked.example", reason="staff", source="test")
    process = pipeline("all", OUTREACH_MAX_PER_COMPANY_DOMAIN="2")

    first = api_client.post("/api/v1/leads/ingest", _lead_created("person-api-1", PERSON[0]), format="json")
    assert first.status_code == 202, first.content
    wait_until(lambda: len(smtp_sink.received()) == 1, what="the first lead's mail")

    produce_raw(broker.bootstrap, [_lead_created("person-kafka-2", PERSON[1])])
    later = [_lead_created("person-api-3", PERSON[2]), _lead_created("blocked-1", "sam@blocked.example")]
    assert api_client.post("/api/v1/leads/ingest", later, format="json").status_code == 202
    ids = ["person-api-1", "person-kafka-2", "person-api-3", "blocked-1"]
    wait_until(lambda: _settled(ids), what="every lead scored and decided")

    assert [mail["To"] for mail in smtp_sink.received()] == ["Grace.Hopper@navy-labs.example"]
    assert Outreach.objects.get().lead.lightfield_id == "person-api-1"
    reasons = dict(Lead.objects.values_list("lightfield_id", "not_contacted_reason"))
    assert reasons["person-api-1"] == ""
    assert reasons["person-kafka-2"] == reasons["person-api-3"]
    assert reasons["person-kafka-2"].startswith("the address was written to within 90 days")
    assert reasons["blocked-1"] == "the domain blocked.example is suppressed (staff)"
    assert process.terminate() == 0, process.log()
    assert len(smtp_sink.received()) == 1
