"""Helpers for the tests that run the pipeline on a real broker: waiting, producing straight to
`leads.raw` as an external CRM would, reading a topic back, and knowing when the leads settled."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from confluent_kafka import Consumer

from leads.models import Lead
from leads.pipeline.events import encode
from leads.topics import LEADS_RAW
from pipeline_whisperer.kafka import make_producer


def wait_until(predicate: Callable[[], bool], *, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def produce_raw(bootstrap: str, events: list[dict | bytes]) -> None:
    producer = make_producer()
    for event in events:
        value = event if isinstance(event, bytes) else encode(event)
        key = b"poison" if isinstance(event, bytes) else event["lightfield_id"].encode()
        producer.produce(LEADS_RAW, key=key, value=value)
    assert producer.flush(15) == 0


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list:
    """The first `count` messages of `topic`, read by a consumer group of the test's own."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([topic])
    messages: list = []
    deadline = time.monotonic() + timeout
    while len(messages) < count and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and not message.error():
            messages.append(message)
    consumer.close()
    return messages


def leads_settled(expected: int) -> Callable[[], bool]:
    """All `expected` leads are past scoring and every qualified one has had its outreach sent."""

    def check() -> bool:
        counts = Counter(Lead.objects.values_list("status", flat=True))
        return sum(counts.values()) == expected and counts["raw"] == 0 and counts["scored"] == 0

    return check
