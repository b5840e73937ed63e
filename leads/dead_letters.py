"""Dead letters: messages a stage gave up on, kept with the error for staff to retry or discard.

Anything a producer sent must fit, or the stage could never move past it: U+0000 (which
PostgreSQL text cannot hold) is replaced, and an over-long key or event id is cut to its column.
"""

from __future__ import annotations

from leads.models import DeadLetter


def _storable(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def dead_letter_record(
    *,
    stage: str,
    topic: str,
    key: str,
    event_id: str,
    value: bytes,
    headers: dict[str, str],
    error: str,
    attempts: int,
) -> DeadLetter:
    """Store a message `stage` gave up on; `headers` should keep event_type and correlation_id,
    so a retry goes out as the same kind of event under the same correlation id."""
    return DeadLetter.objects.create(
        stage=stage,
        topic=topic,
        key=key[: DeadLetter._meta.get_field("key").max_length],
        event_id=event_id[: DeadLetter._meta.get_field("event_id").max_length],
        value=_storable(value.decode(errors="replace")),
        headers=headers,
        error=_storable(error[:10_000]),
        attempts=attempts,
    )
