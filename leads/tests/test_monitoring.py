"""What leads registers with health: the outbox backlog check, the pipeline's gauges on /metrics
and each stage's consumer group."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from health.registry import registered_checks, registered_collectors, registered_consumer_groups
from health.tests.support import metric_samples
from leads.models import DeadLetter, LeadStatus, OutboxEvent, Outreach
from leads.monitoring import PIPELINE_COLLECTOR, OutboxBacklog, StageProgress, register
from leads.pipeline.stages import STAGES
from leads.services.brake import sending_pause, sending_resume
from leads.tests.factories import LeadFactory, VariantFactory


@pytest.mark.django_db
def test_metrics_count_leads_by_status(client):
    LeadFactory.create_batch(2, status=LeadStatus.SCORED)
    LeadFactory(status=LeadStatus.CONVERTED)
    samples = metric_samples(client.get("/metrics"))
    assert samples[("pipeline_leads", (("status", "scored"),))] == 2
    assert samples[("pipeline_leads", (("status", "converted"),))] == 1
    assert samples[("pipeline_leads", (("status", "raw"),))] == 0


@pytest.mark.django_db
def test_metrics_show_variant_posteriors(client):
    variant = VariantFactory(alpha=3.0, beta=1.0)
    labels = (("experiment", variant.experiment.name), ("variant", variant.name))
    samples = metric_samples(client.get("/metrics"))
    assert samples[("pipeline_variant_posterior_alpha", labels)] == 3.0
    assert samples[("pipeline_variant_posterior_mean", labels)] == 0.75


@pytest.mark.django_db
def test_metrics_count_dead_letters_by_topic_and_status(client):
    DeadLetter.objects.create(stage="scorer", topic="leads.raw", value="{", error="ValueError")
    samples = metric_samples(client.get("/metrics"))
    assert samples[("pipeline_dead_letters", (("status", "pending"), ("topic", "leads.raw")))] == 1


def test_each_stage_registers_its_consumer_group_on_its_topic():
    assert {name: stage.topic for name, stage in STAGES.items()} == registered_consumer_groups()


def test_the_pipeline_checks_are_in_readiness_and_detailed_and_not_in_startup():
    for check in (OutboxBacklog, StageProgress):
        assert check in registered_checks("readiness") and check in registered_checks("detailed")
        assert check not in registered_checks("startup")


def test_registering_again_changes_nothing():
    before = (registered_checks("detailed"), registered_collectors(), registered_consumer_groups())
    register()
    assert (registered_checks("detailed"), registered_collectors(), registered_consumer_groups()) == before
    assert registered_collectors().count(PIPELINE_COLLECTOR) == 1


@pytest.mark.django_db(transaction=True)  # the check reads on a connection of its own thread
def test_detailed_warns_when_the_oldest_outbox_event_waited_too_long(staff_client, settings):
    settings.HEALTH_OUTBOX_MAX_AGE_SECONDS = 60
    event = OutboxEvent.objects.create(
        event_id=uuid.uuid4(), topic="leads.scored", key="lf-1", event_type="lead.scored", payload={}
    )
    OutboxEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    response = staff_client.get("/health/detailed")
    backlog = response.json()["checks"]["outbox_backlog"]
    assert response.status_code == 200  # a warning, not an outage
    assert (backlog["status"], backlog["pending"]) == ("warning", 1)
    assert backlog["oldest_age_seconds"] >= 300


def _sent(count: int, **fields) -> None:
    lead = LeadFactory()
    at = timezone.now() - timedelta(hours=2)
    Outreach.objects.bulk_create(
        Outreach(lead=lead, to_email=f"m{n}@example.com", subject="s", body="b", sent_at=at, **fields)
        for n in range(count)
    )


@pytest.mark.django_db
def test_metrics_show_the_deliverability_rates_and_that_sending_is_on(client):
    recent = timezone.now() - timedelta(hours=1)
    _sent(16)
    _sent(3, status=Outreach.Status.BOUNCED, bounce_type="hard", bounced_at=recent)
    _sent(1, status=Outreach.Status.COMPLAINED, complained_at=recent)
    samples = metric_samples(client.get("/metrics"))
    assert samples[("pipeline_outreach_sent_7d", ())] == 20
    assert samples[("pipeline_outreach_bounce_rate_7d", ())] == 3 / 20
    assert samples[("pipeline_outreach_complaint_rate_7d", ())] == 1 / 20
    assert samples[("pipeline_sending_paused", ())] == 0


@pytest.mark.django_db
def test_metrics_say_when_sending_is_paused_and_resuming_starts_the_count_afresh(client):
    _sent(5)
    sending_pause(by="ops", reason="checking a list")
    assert metric_samples(client.get("/metrics"))[("pipeline_sending_paused", ())] == 1
    sending_resume(by="ops")
    samples = metric_samples(client.get("/metrics"))
    assert (samples[("pipeline_sending_paused", ())], samples[("pipeline_outreach_sent_7d", ())]) == (0, 0)
