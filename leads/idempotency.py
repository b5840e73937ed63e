"""Exactly-once application: which events a stage has applied, recorded in the transaction
that applied them, so a redelivered event is recognised and changes nothing.

Safe under concurrent workers: the (stage, event_id) unique constraint decides who applied an
event, and `events_claim` returns only the ids this transaction recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from leads.models import ProcessedEvent

_TABLE = ProcessedEvent._meta.db_table


class AlreadyApplied(Exception):
    """This stage applied this event before; the redelivery changes nothing."""


def events_applied(*, stage: str, event_ids: Sequence[str]) -> set[str]:
    """Which of `event_ids` the stage applied before (one query)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT event_id FROM {_TABLE} WHERE stage = %s AND event_id IN (SELECT value FROM {_json_rows()})",  # noqa: S608  # nosec B608  # constants, values bound
            [stage, json.dumps(list(event_ids))],
        )
        return {row[0] for row in cursor.fetchall()}


def events_claim(*, stage: str, event_ids: Sequence[str]) -> set[str]:
    """Record `event_ids` as applied by `stage`; returns the ids that were new. Call inside the
    transaction that applies them: one INSERT ... ON CONFLICT DO NOTHING RETURNING."""
    if not event_ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_TABLE} (stage, event_id, processed_at) SELECT %s, value, %s FROM {_json_rows()} "  # noqa: S608  # nosec B608  # constants, values bound
            "WHERE true ON CONFLICT (stage, event_id) DO NOTHING RETURNING event_id",
            [stage, timezone.now(), json.dumps(list(event_ids))],
        )
        return {row[0] for row in cursor.fetchall()}


def _json_rows() -> str:
    """The rows `value` of the JSON array bound at that place: the ids travel as one parameter,
    not one each (quoting hundreds of parameters costs more than the statement)."""
    if connection.vendor == "postgresql":
        return "jsonb_array_elements_text(%s::jsonb)"
    return "json_each(%s)"  # SQLite (the WHERE true before ON CONFLICT is its parser's need)


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
