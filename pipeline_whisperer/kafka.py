"""Kafka clients configured from settings: an idempotent producer, consumers that never
auto-commit, and topic creation at start-up."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from django.conf import settings

logger = logging.getLogger(__name__)


def _common() -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
        "security.protocol": settings.KAFKA_SECURITY_PROTOCOL,
    }
    if settings.KAFKA_SASL_MECHANISM:
        config.update(
            {
                "sasl.mechanism": settings.KAFKA_SASL_MECHANISM,
                "sasl.username": settings.KAFKA_SASL_USERNAME,
                "sasl.password": settings.KAFKA_SASL_PASSWORD,
            }
        )
    return config


def make_producer(**overrides: Any) -> Producer:
    """Idempotent (no duplicates or reordering from the producer's own retries), acks=all."""
    return Producer(
        {
            **_common(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            # A broker outage fails deliveries after this long; the outbox keeps the rows to retry.
            "message.timeout.ms": settings.KAFKA_PUBLISH_TIMEOUT_SECONDS * 1000,
            **overrides,
        }
    )


def make_consumer(group: str, **overrides: Any) -> Consumer:
    """A consumer-group member whose offsets move only when the stage commits them."""
    return Consumer(
        {
            **_common(),
            "group.id": f"{settings.KAFKA_CONSUMER_GROUP_PREFIX}.{group}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": settings.KAFKA_SESSION_TIMEOUT_MS,
            "isolation.level": "read_committed",
            **overrides,
        }
    )


def ensure_topics(topics: Iterable[str], *, timeout: float = 15.0) -> None:
    """Create any of `topics` that do not exist, with the configured partitions."""
    admin = AdminClient(_common())
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [name for name in topics if name not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [
            NewTopic(
                name,
                num_partitions=settings.KAFKA_TOPIC_PARTITIONS,
                replication_factor=settings.KAFKA_REPLICATION_FACTOR,
            )
            for name in missing
        ],
        operation_timeout=timeout,
    )
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            logger.info("created topic %s", name)
        except KafkaException as error:
            if error.args[0].name() != "TOPIC_ALREADY_EXISTS":  # another process won the race
                raise
