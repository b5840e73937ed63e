"""Exactly-once application: which events a stage has applied, recorded in the transaction
that applied them, so a redelivered event is recognised and changes nothing.

Safe under concurrent workers: the (stage, event_id) unique constraint decides who applied an
event, and `events_claim` returns only the ids this transaction recorded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from leads.models import ProcessedEvent

# Rows per INSERT: three parameters each keeps well inside SQLite's parameter limit.
_CLAIM_CHUNK = 300


class AlreadyApplied(Exception):
    """This stage applied this event before; the redelivery changes nothing."""


def events_applied(*, stage: str, event_ids: Sequence[str]) -> set[str]:
    """Which of `event_ids` the stage applied before (one query)."""
    return set(ProcessedEvent.objects.filter(stage=stage, event_id__in=event_ids).values_list("event_id", flat=True))


def events_claim(*, stage: str, event_ids: Sequence[str]) -> set[str]:
    """Record `event_ids` as applied by `stage`; returns the ids that were new. Call inside the
    transaction that applies them: one INSERT ... ON CONFLICT DO NOTHING RETURNING per chunk."""
    table = ProcessedEvent._meta.db_table
    now = timezone.now()
    claimed: set[str] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(event_ids), _CLAIM_CHUNK):
            chunk = event_ids[start : start + _CLAIM_CHUNK]
            values = ", ".join(["(%s, %s, %s)"] * len(chunk))
            params = [value for event_id in chunk for value in (stage, event_id, now)]
            cursor.execute(
                f"INSERT INTO {table} (stage, event_id, processed_at) VALUES {values} "  # noqa: S608  # nosec B608  # table name from the model, values bound
                "ON CONFLICT (stage, event_id) DO NOTHING RETURNING event_id",
                params,
            )
            claimed.update(row[0] for row in cursor.fetchall())
    return claimed


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
