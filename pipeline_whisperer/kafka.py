"""Kafka clients configured from settings: an idempotent producer, consumers that never
auto-commit, topic creation at start-up, and consumer-group lag for health and metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
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


def kafka_config() -> dict[str, Any]:
    """The settings every client shares (brokers, security), for clients built elsewhere."""
    return _common()


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
            "message.max.bytes": max_message_bytes(),
            **overrides,
        }
    )


def max_message_bytes() -> int:
    """The largest message a producer sends and a topic takes: the largest event, with headroom."""
    return int(settings.PIPELINE_MAX_EVENT_BYTES + settings.KAFKA_MESSAGE_HEADROOM_BYTES)


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
                config={"max.message.bytes": str(max_message_bytes())},
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


def consumer_lag(*, groups: Mapping[str, Iterable[str]], timeout: float = 2.0) -> dict[str, int | None]:
    """Messages each consumer group has still to process, by full group id.

    `groups` maps a group id to the topics it consumes. Lag is the high watermark minus the
    committed offset (the low watermark where the group has committed nothing), summed over
    every partition. A group whose numbers cannot be had within `timeout` seconds (for all
    groups together) is None. Read-only: the group is never joined, so members keep running.
    """
    deadline = time.monotonic() + timeout
    lags: dict[str, int | None] = {}
    for group, topics in groups.items():
        try:
            lags[group] = _group_lag(group, list(topics), deadline)
        except (KafkaException, TimeoutError) as error:
            logger.info("lag of %s unknown: %s", group, error)
            lags[group] = None
    return lags


def _group_lag(group: str, topics: list[str], deadline: float) -> int:
    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("out of time")
        return left

    consumer = Consumer({**_common(), "group.id": group, "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(timeout=remaining())
        partitions = [
            TopicPartition(topic, number)
            for topic in topics
            if topic in metadata.topics  # a topic not created yet holds nothing to process
            for number in metadata.topics[topic].partitions
        ]
        if not partitions:
            return 0
        lag = 0
        for committed in consumer.committed(partitions, timeout=remaining()):
            low, high = consumer.get_watermark_offsets(committed, timeout=remaining())
            lag += max(high - (committed.offset if committed.offset >= 0 else low), 0)
        return lag
    finally:
        consumer.close()
