"""The correlation id of the work in hand: set from a request or a message's headers, read by
whatever that work causes (outbox events, log lines, error bodies)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_current: ContextVar[str] = ContextVar("correlation_id", default="")


def get_correlation_id() -> str:
    return _current.get()


def new_correlation_id() -> str:
    return str(uuid.uuid4())


@contextmanager
def correlation_scope(correlation_id: str) -> Iterator[str]:
    """Bind `correlation_id` (or a new one if empty) for the duration of the block."""
    token = _current.set(correlation_id or new_correlation_id())
    try:
        yield _current.get()
    finally:
        _current.reset(token)
