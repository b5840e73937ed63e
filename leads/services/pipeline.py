"""Staff actions on the pipeline's machinery: retry or discard a dead letter, retry or set aside
a stuck outbox row."""

from __future__ import annotations

import json

from django.db import transaction
from django.utils import timezone

from leads.dead_letters import dead_letter_record
from leads.models import DeadLetter, OutboxEvent
from leads.outbox import outbox_dispatch_after_commit, outbox_emit
from pipeline_whisperer.exceptions import Conflict


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
    """Clear an unpublished row's failure record (a row set aside as refused for good becomes
    pending again) and hand it to this process's dispatcher again (the in-process bus delivers it
    now; with Kafka the relay keeps retrying pending rows on its own, and clearing the error shows
    whether the next attempt fails again). A row published already is a Conflict."""
    with transaction.atomic():
        unpublished = OutboxEvent.objects.filter(pk=row.pk, published_at__isnull=True)
        updated = unpublished.update(attempts=0, last_error="", failed_at=None)
        if not updated:
            raise Conflict("This event was published already.")
        outbox_dispatch_after_commit([row])
    row.refresh_from_db()
    return row


def outbox_discard(*, row: OutboxEvent) -> DeadLetter:
    """Take a stuck row out of the outbox so the events behind it can flow, keeping it as a
    pending dead letter (stage `outbox`), from which it can still be retried or discarded."""
    with transaction.atomic():
        locked = OutboxEvent.objects.select_for_update().filter(pk=row.pk, published_at__isnull=True).first()
        if locked is None:
            raise Conflict("This event was published or discarded already.")
        dead_letter = dead_letter_record(
            stage="outbox",
            topic=locked.topic,
            key=locked.key,
            event_id=str(locked.event_id),
            value=json.dumps(locked.payload, separators=(",", ":"), default=str).encode(),
            headers={"event_type": locked.event_type, "correlation_id": locked.correlation_id},
            error=f"discarded from the outbox by staff; last error: {locked.last_error or 'none'}",
            attempts=max(locked.attempts, 1),
        )
        locked.delete()
    return dead_letter
