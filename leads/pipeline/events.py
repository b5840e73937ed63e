"""The wire contract: the shape of the events that travel on the pipeline's topics.

Every event on the wire is JSON keyed by lightfield_id, with headers `event_id`, `event_type`
and `correlation_id`. `leads.raw` carries Lightfield events unchanged, so external producers can
write to it directly; an external message without an `event_id` header is identified by the
SHA-256 of its bytes, so a redelivered copy is still recognised.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from leads.models import OutboxEvent


@dataclass(frozen=True)
class Event:
    """One message as a stage sees it, whichever bus delivered it."""

    topic: str
    key: str
    value: bytes
    event_id: str
    event_type: str = ""
    correlation_id: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> Any:
        """The decoded JSON value; ValueError if it is not JSON."""
        return json.loads(self.value)


def encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), default=str).encode()


def event_from_message(
    *, topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]] | None
) -> Event:
    """An Event from a Kafka message's parts; tolerant of anything, so a poison message still
    becomes an Event that can be dead-lettered."""
    decoded = {
        _storable(name): (_storable(raw.decode(errors="replace")) if raw is not None else "")
        for name, raw in headers or []
    }
    body = value or b""
    return Event(
        topic=topic,
        key=_storable((key or b"").decode(errors="replace")),
        value=body,
        event_id=decoded.get("event_id") or "sha256:" + hashlib.sha256(body).hexdigest(),
        event_type=decoded.get("event_type", ""),
        correlation_id=decoded.get("correlation_id", ""),
        headers=decoded,
    )


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


def _storable(text: str) -> str:
    """`text` without U+0000, which PostgreSQL text and jsonb cannot hold: a message whose key or
    headers carry one must still be recorded as applied or dead-lettered, never stop its stage."""
    return text.replace("\x00", "\ufffd")


def wire_headers(event: Event) -> list[tuple[str, bytes]]:
    headers = {
        **event.headers,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "correlation_id": event.correlation_id,
    }
    return [(name, value.encode()) for name, value in headers.items() if value]
