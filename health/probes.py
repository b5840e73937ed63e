"""health's own checks for each probe (apps add theirs through `health.registry`), and the facts
only /health/detailed reports: versions and the registered consumer groups' lag."""

from __future__ import annotations

import platform
from importlib import metadata

from django.conf import settings

from health.registry import registered_consumer_groups
from pipeline_whisperer.kafka import consumer_lag

# Startup: the process can reach its database and the schema matches its code.
STARTUP_CHECKS = ["health.checks.Database", "health.checks.Migrations"]
# Readiness: everything a request may need (Kafka is added when configured).
READINESS_CHECKS = [*STARTUP_CHECKS, "health_check.Cache"]
# Detailed: all of the above and this process's connection pool.
DETAILED_CHECKS = [*READINESS_CHECKS, "health.checks.DatabasePool"]

_VERSIONED = ("django", "djangorestframework", "django-health-check", "prometheus-client", "psycopg", "confluent-kafka")


def stage_lag() -> dict[str, int | None]:
    """Messages each registered stage has still to consume (None: unknown); empty without Kafka.

    A stage's consumer group is <KAFKA_CONSUMER_GROUP_PREFIX>.<stage>, reading its one topic.
    """
    if not settings.KAFKA_BOOTSTRAP_SERVERS:
        return {}
    stage_topics = registered_consumer_groups()
    group = f"{settings.KAFKA_CONSUMER_GROUP_PREFIX}.{{}}".format
    lags = consumer_lag(
        groups={group(stage): [topic] for stage, topic in stage_topics.items()},
        timeout=settings.HEALTH_CHECK_TIMEOUT_SECONDS,
    )
    return {stage: lags[group(stage)] for stage in stage_topics}


def versions() -> dict[str, str]:
    """Python and the libraries whose version matters when reading an incident."""
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
