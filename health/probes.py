"""Which checks each probe runs, and the pipeline facts only /health/detailed reports."""

from __future__ import annotations

import platform
from importlib import metadata

from django.conf import settings

from pipeline_whisperer.kafka import consumer_lag

# Each stage's consumer group is <KAFKA_CONSUMER_GROUP_PREFIX>.<stage>, reading one topic. health
# may not import leads' stages; health/tests/test_probes.py keeps this equal to leads.stages.STAGES.
STAGE_TOPICS = {"scorer": "leads.raw", "outreach": "leads.scored", "feedback": "outreach.events"}

# Startup: the process can reach its database and the schema matches its code.
STARTUP_CHECKS = ["health.checks.Database", "health.checks.Migrations"]
# Readiness: everything a request may need (Kafka is added when configured).
READINESS_CHECKS = [*STARTUP_CHECKS, "health_check.Cache"]
# Detailed: all of the above and the pipeline's own state.
DETAILED_CHECKS = [*READINESS_CHECKS, "health.checks.OutboxBacklog", "health.checks.DatabasePool"]

_VERSIONED = ("django", "djangorestframework", "django-health-check", "prometheus-client", "psycopg", "confluent-kafka")


def stage_lag() -> dict[str, int | None]:
    """Messages each pipeline stage has still to consume (None: unknown); empty without Kafka."""
    if not settings.KAFKA_BOOTSTRAP_SERVERS:
        return {}
    group = f"{settings.KAFKA_CONSUMER_GROUP_PREFIX}.{{}}".format
    lags = consumer_lag(
        groups={group(stage): [topic] for stage, topic in STAGE_TOPICS.items()},
        timeout=settings.HEALTH_CHECK_TIMEOUT_SECONDS,
    )
    return {stage: lags[group(stage)] for stage in STAGE_TOPICS}


def versions() -> dict[str, str]:
    """Python and the libraries whose version matters when reading an incident."""
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
