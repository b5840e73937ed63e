"""The transactional outbox, exactly-once application, and dead letters.

`outbox_emit` must run inside the transaction whose change caused the event: the row commits
or rolls back with it. With Kafka the relay publishes pending rows; without it (the embedded
default) the rows are handed to the in-process bus once the transaction commits.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from leads.events import Event, encode
from leads.models import DeadLetter, OutboxEvent, ProcessedEvent
from pipeline_whisperer.correlation import get_correlation_id
from pipeline_whisperer.exceptions import Conflict


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
    """Store a message a stage gave up on. Anything a producer sent must fit, or the stage could
    never move past it: U+0000 (which PostgreSQL text cannot hold) is replaced, and an over-long
    key or event id is cut to its column."""
    return DeadLetter.objects.create(
        stage=stage,
        topic=event.topic,
        key=event.key[: DeadLetter._meta.get_field("key").max_length],
        event_id=event.event_id[: DeadLetter._meta.get_field("event_id").max_length],
        value=event.value.decode(errors="replace").replace("\x00", "\ufffd"),
        # Kept so a retry goes out as the same kind of event, under the same correlation id.
        headers={**event.headers, "event_type": event.event_type, "correlation_id": event.correlation_id},
        error=error[:10_000].replace("\x00", "\ufffd"),
        attempts=attempts,
    )


def dead_letter_retry(*, dead_letter: DeadLetter) -> OutboxEvent:
    """Send a dead letter through its stage again, as a new event on its original topic."""
    if dead_letter.status != DeadLetter.Status.PENDING:
        raise Conflict(f"This dead letter was {dead_letter.status} already.")
    try:
        payload = json.loads(dead_letter.value)
    except ValueError:
        raise Conflict("The message is not JSON; it can only be discarded.") from None
    with transaction.atomic():
        updated = DeadLetter.objects.filter(pk=dead_letter.pk, status=DeadLetter.Status.PENDING).update(
            status=DeadLetter.Status.RETRIED, resolved_at=timezone.now()
        )
        if not updated:
            raise Conflict("Someone else resolved this dead letter just now.")
        return outbox_emit(
            topic=dead_letter.topic,
            key=dead_letter.key,
            event_type=dead_letter.headers.get("event_type", "retry"),
            payload=payload,
        )


def dead_letter_discard(*, dead_letter: DeadLetter) -> None:
    updated = DeadLetter.objects.filter(pk=dead_letter.pk, status=DeadLetter.Status.PENDING).update(
        status=DeadLetter.Status.DISCARDED, resolved_at=timezone.now()
    )
    if not updated:
        raise Conflict(f"This dead letter was {dead_letter.status} already.")


def outbox_retry(*, row: OutboxEvent) -> OutboxEvent:
    """Clear a pending row's failure record and, on the in-process bus, deliver it now.

    With Kafka the relay keeps retrying pending rows on its own; clearing the error shows
    whether the next attempt fails again. A row published already is a Conflict.
    """
    updated = OutboxEvent.objects.filter(pk=row.pk, published_at__isnull=True).update(attempts=0, last_error="")
    if not updated:
        raise Conflict("This event was published already.")
    if not settings.KAFKA_BOOTSTRAP_SERVERS:
        from leads.inprocess import deliver_outbox  # the in-process bus runs the stages, which use this module

        transaction.on_commit(lambda: deliver_outbox([row.event_id]))
    row.refresh_from_db()
    return row


def outbox_discard(*, row: OutboxEvent) -> DeadLetter:
    """Take a stuck row out of the outbox so the events behind it can flow, keeping it as a
    pending dead letter (stage `outbox`), from which it can still be retried or discarded."""
    with transaction.atomic():
        locked = OutboxEvent.objects.select_for_update().filter(pk=row.pk, published_at__isnull=True).first()
        if locked is None:
            raise Conflict("This event was published or discarded already.")
        reason = f"discarded from the outbox by staff; last error: {locked.last_error or 'none'}"
        dead_letter = dead_letter_record(
            stage="outbox", event=outbox_event(locked), error=reason, attempts=max(locked.attempts, 1)
        )
        locked.delete()
    return dead_letter
