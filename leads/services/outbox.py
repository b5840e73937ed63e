"""The transactional outbox, exactly-once application, and dead letters.

`outbox_emit` must run inside the transaction whose change caused the event: the row commits
or rolls back with it. With Kafka the relay publishes pending rows; without it (the embedded
default) the rows are handed to the in-process bus once the transaction commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from leads.events import Event, encode
from leads.models import DeadLetter, OutboxEvent, ProcessedEvent
from pipeline_whisperer.correlation import get_correlation_id


class AlreadyApplied(Exception):
    """This stage applied this event before; the redelivery changes nothing."""


@dataclass(frozen=True)
class Emission:
    topic: str
    key: str
    event_type: str
    payload: Any


def outbox_emit(*, topic: str, key: str, event_type: str, payload: Any) -> OutboxEvent:
    return outbox_emit_many([Emission(topic, key, event_type, payload)])[0]


def outbox_emit_many(emissions: Sequence[Emission]) -> list[OutboxEvent]:
    """Write events to the outbox in order; call inside the transaction that caused them."""
    correlation_id = get_correlation_id()
    rows = OutboxEvent.objects.bulk_create(
        OutboxEvent(
            event_id=uuid.uuid4(),
            topic=e.topic,
            key=e.key,
            event_type=e.event_type,
            payload=e.payload,
            correlation_id=correlation_id,
        )
        for e in emissions
    )
    if not settings.KAFKA_BOOTSTRAP_SERVERS:
        from leads.inprocess import deliver_outbox  # the in-process bus runs the stages, which use this module

        transaction.on_commit(lambda: deliver_outbox([row.event_id for row in rows]))
    return rows


def outbox_event(row: OutboxEvent) -> Event:
    """The wire form of an outbox row."""
    return Event(
        topic=row.topic,
        key=row.key,
        value=encode(row.payload),
        event_id=str(row.event_id),
        event_type=row.event_type,
        correlation_id=row.correlation_id,
    )


@contextmanager
def exactly_once(*, stage: str, event_id: str) -> Iterator[None]:
    """A transaction that records `event_id` as applied by `stage` along with the block's writes.

    Raises AlreadyApplied, writing nothing, if the stage applied the event before.
    """
    with transaction.atomic():
        try:
            with transaction.atomic():
                ProcessedEvent.objects.create(stage=stage, event_id=event_id)
        except IntegrityError:
            raise AlreadyApplied(event_id) from None
        yield


def event_was_applied(*, stage: str, event_id: str) -> bool:
    return ProcessedEvent.objects.filter(stage=stage, event_id=event_id).exists()


def dead_letter_record(*, stage: str, event: Event, error: str, attempts: int) -> DeadLetter:
    return DeadLetter.objects.create(
        stage=stage,
        topic=event.topic,
        key=event.key,
        event_id=event.event_id,
        value=event.value.decode(errors="replace"),
        headers=event.headers,
        error=error[:10_000],
        attempts=attempts,
    )
