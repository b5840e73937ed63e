"""What the probes and /metrics must see of the pipeline, handed to health at start-up.

health imports no app; `register()`, called from `LeadsConfig.ready()`, registers the outbox
backlog check for /health/detailed, the pipeline's gauges for /metrics, and each stage's
consumer group for the lag that /health/detailed, /metrics and the console report.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Max, Min
from django.utils import timezone
from health_check.exceptions import ServiceWarning
from prometheus_client.core import GaugeMetricFamily, Metric

from health.checks import ProbeCheck, own_connection
from health.probes import stage_lag
from health.registry import register_check, register_collector, register_consumer_groups
from leads.models import DeadLetter, Lead, LeadStatus, OutboxEvent, ProcessedEvent, Variant
from leads.pipeline.stages import STAGES
from leads.services.brake import deliverability_rates, sending_paused

logger = logging.getLogger(__name__)


def register() -> None:
    """Register the pipeline's checks, collector and consumer groups with health (idempotent).
    The checks only warn (HTTP 200): a stuck relay or stage must be seen, but must not take the
    web processes out of service."""
    register_check(OutboxBacklog, probes=("readiness", "detailed"))
    register_check(StageProgress, probes=("readiness", "detailed"))
    register_collector(PIPELINE_COLLECTOR)
    register_consumer_groups({name: stage.topic for name, stage in STAGES.items()})


@dataclasses.dataclass
class OutboxBacklog(ProbeCheck):
    """Unpublished outbox events; a warning when the oldest waited longer than
    HEALTH_OUTBOX_MAX_AGE_SECONDS (the relay or the brokers are stuck) or when the broker refused
    some for good (set aside, waiting for staff)."""

    def run(self) -> None:
        with own_connection():
            backlog = OutboxEvent.objects.pending().order_by().aggregate(count=Count("id"), oldest=Min("created_at"))
            set_aside = OutboxEvent.objects.set_aside().count()
        count = backlog["count"]
        age = (timezone.now() - backlog["oldest"]).total_seconds() if backlog["oldest"] else 0.0
        self.details.update(pending=count, oldest_age_seconds=round(age, 3), set_aside=set_aside)
        if age > settings.HEALTH_OUTBOX_MAX_AGE_SECONDS:
            raise ServiceWarning(f"{count} outbox event(s) pending, the oldest for {age:.0f} s")
        if set_aside:
            raise ServiceWarning(f"{set_aside} outbox event(s) refused by the broker, set aside for staff")


@dataclasses.dataclass
class StageProgress(ProbeCheck):
    """With Kafka: a warning naming each stage that has messages waiting but has applied nothing
    for HEALTH_STAGE_STALL_SECONDS. The lag is read only for a stage that quiet, so a pipeline at
    work costs one indexed query per stage."""

    def run(self) -> None:
        if not settings.KAFKA_BOOTSTRAP_SERVERS:
            return
        now, stall = timezone.now(), settings.HEALTH_STAGE_STALL_SECONDS
        with own_connection():
            last = {
                stage: ProcessedEvent.objects.filter(stage=stage).aggregate(at=Max("processed_at"))["at"]
                for stage in STAGES
            }
        quiet = [stage for stage, at in last.items() if at is None or (now - at).total_seconds() > stall]
        if not quiet:
            return
        waiting = {stage: lag for stage, lag in stage_lag().items() if stage in quiet and lag}
        self.details.update(stalled=waiting)
        if waiting:
            named = ", ".join(f"{stage} ({lag} waiting)" for stage, lag in waiting.items())
            raise ServiceWarning(f"no progress for {stall} s while messages wait: {named}")


class PipelineCollector:
    """Gauges computed per scrape with a few aggregate queries (a class: prometheus_client's
    custom-collector interface). Without the database only `pipeline_database_up 0` remains."""

    def collect(self) -> Iterator[Metric]:
        try:
            families = [_leads(), *_outbox(), _dead_letters(), *_posteriors(), *_deliverability()]
        except DatabaseError as error:
            logger.warning("pipeline metrics unavailable: %s", error)
            families = []
        yield GaugeMetricFamily(
            "pipeline_database_up", "1 when the scrape could read the database.", 1.0 if families else 0.0
        )
        yield from families


# One instance for the process: registering it again is then a no-op.
PIPELINE_COLLECTOR = PipelineCollector()


def _leads() -> Metric:
    counts = dict.fromkeys(LeadStatus.values, 0) | dict(
        Lead.objects.order_by().values_list("status").annotate(count=Count("id"))
    )
    family = GaugeMetricFamily("pipeline_leads", "Leads by status.", labels=["status"])
    for status, count in counts.items():
        family.add_metric([status], count)
    return family


def _outbox() -> list[Metric]:
    backlog = OutboxEvent.objects.pending().order_by().aggregate(count=Count("id"), oldest=Min("created_at"))
    age = (timezone.now() - backlog["oldest"]).total_seconds() if backlog["oldest"] else 0.0
    return [
        GaugeMetricFamily("pipeline_outbox_pending", "Outbox events not yet published.", backlog["count"]),
        GaugeMetricFamily("pipeline_outbox_oldest_pending_seconds", "Age of the oldest unpublished event.", age),
    ]


def _dead_letters() -> Metric:
    family = GaugeMetricFamily("pipeline_dead_letters", "Dead letters by topic and status.", labels=["topic", "status"])
    rows = DeadLetter.objects.order_by().values_list("topic", "status").annotate(count=Count("id"))
    for topic, status, count in rows:
        family.add_metric([topic, status], count)
    return family


def _posteriors() -> list[Metric]:
    labels = ["experiment", "variant"]
    alpha = GaugeMetricFamily("pipeline_variant_posterior_alpha", "Beta posterior alpha per variant.", labels=labels)
    beta = GaugeMetricFamily("pipeline_variant_posterior_beta", "Beta posterior beta per variant.", labels=labels)
    mean = GaugeMetricFamily("pipeline_variant_posterior_mean", "Posterior mean conversion rate.", labels=labels)
    for experiment, variant, a, b in Variant.objects.values_list("experiment__name", "name", "alpha", "beta"):
        alpha.add_metric([experiment, variant], a)
        beta.add_metric([experiment, variant], b)
        mean.add_metric([experiment, variant], a / (a + b))
    return [alpha, beta, mean]


def _deliverability() -> list[Metric]:
    """The brake's view: four indexed counts and the pause row (see leads.services.brake)."""
    rates = deliverability_rates(now=timezone.now())
    window = "over the last 7 days, or since sending was last resumed"
    return [
        GaugeMetricFamily("pipeline_outreach_sent_7d", f"Outreach mail sent {window}.", rates.sent),
        GaugeMetricFamily(
            "pipeline_outreach_bounce_rate_7d", f"Hard bounces per mail sent {window}.", rates.bounce_rate
        ),
        GaugeMetricFamily(
            "pipeline_outreach_complaint_rate_7d", f"Complaints per mail sent {window}.", rates.complaint_rate
        ),
        GaugeMetricFamily(
            "pipeline_sending_paused",
            "1 while outreach sending is paused (the deliverability brake or staff).",
            1.0 if sending_paused() is not None else 0.0,
        ),
    ]
