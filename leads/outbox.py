"""The transactional outbox: events written in the transaction of the change that caused them.

`outbox_emit_many` must run inside that transaction: the rows commit or roll back with it.
What happens to committed rows is the business of a dispatcher registered once at start-up
(`outbox_dispatcher_set`, from `LeadsConfig.ready()`): the in-process bus when there is no
Kafka, nothing otherwise (the relay then publishes pending rows). This module imports no stage
and no transport.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from leads.models import OutboxEvent
from pipeline_whisperer.bulk import bulk_upsert
from pipeline_whisperer.correlation import get_correlation_id

Dispatcher = Callable[[Sequence[OutboxEvent]], object]
_dispatcher: Dispatcher | None = None


@dataclass(frozen=True)
class Emission:
    topic: str
    key: str
    event_type: str
    payload: Any
    # The request or event that caused it; None: the current correlation scope's.
    correlation_id: str | None = None


def outbox_dispatcher_set(dispatcher: Dispatcher | None) -> None:
    """Who receives committed rows in this process (None: nobody, a relay publishes them)."""
    global _dispatcher
    _dispatcher = dispatcher


def outbox_emit(*, topic: str, key: str, event_type: str, payload: Any) -> OutboxEvent:
    event_id = outbox_emit_many([Emission(topic, key, event_type, payload)])[0]
    return OutboxEvent.objects.get(event_id=event_id)


def outbox_emit_many(emissions: Sequence[Emission]) -> list[uuid.UUID]:
    """Write events to the outbox in order, in one insert; call inside the transaction that
    caused them. Their event ids, in order. Rows go in as plain values: a provider's webhook
    batch writes up to 1,000, and model instances would cost more than the insert. Instances are
    made only for an in-process dispatcher."""
    correlation_id = get_correlation_id()
    rows = [
        {
            "event_id": uuid.uuid4(),
            "topic": e.topic,
            "key": e.key,
            "event_type": e.event_type,
            "payload": e.payload,
            "correlation_id": correlation_id if e.correlation_id is None else e.correlation_id,
        }
        for e in emissions
    ]
    pks = bulk_upsert(OutboxEvent, rows, key_field="event_id")
    if _dispatcher is not None:
        outbox_dispatch_after_commit([OutboxEvent(pk=pks[str(row["event_id"])], **row) for row in rows])
    return [row["event_id"] for row in rows]


def outbox_dispatch_after_commit(rows: Sequence[OutboxEvent]) -> None:
    """Hand `rows` to the registered dispatcher once the current transaction commits."""
    dispatcher = _dispatcher
    if dispatcher is not None and rows:
        transaction.on_commit(lambda: dispatcher(rows))
