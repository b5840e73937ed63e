"""psycopg's C parser for the timestamps PostgreSQL returns, in place of the Python one Django's
own loader is built on.

Django attaches its time zone to each timestamptz with a loader subclassing psycopg's pure-Python
one, so every timestamp a query returns is parsed in Python: about a third of the time the lead
list spends reading its rows. Django's sessions run in UTC (USE_TZ), where psycopg's C loader (of
psycopg[binary]) already answers aware datetimes in datetime.timezone.utc, as Django's does.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg import adapters
from psycopg.adapt import Loader
from psycopg.pq import Format

_TIMESTAMPTZ = adapters.types["timestamptz"].oid
# The C one with psycopg[binary] (a final class: it can only be wrapped); psycopg always has one.
_FAST_LOADER: type[Loader] = adapters.get_loader(_TIMESTAMPTZ, Format.TEXT)  # type: ignore[assignment]


class UtcTimestamptzLoader(Loader):
    """The C loader, with the `timezone` Django compares with its connection's before each cursor
    (the same, so Django keeps this loader)."""

    timezone = datetime.UTC

    def __init__(self, oid: int, context: Any = None) -> None:
        super().__init__(oid, context)
        self._fast = _FAST_LOADER(oid, context)

    def load(self, data: Any) -> datetime.datetime:
        return self._fast.load(data)


def use_fast_timestamp_loader(sender: Any, connection: BaseDatabaseWrapper, **_: Any) -> None:
    """connection_created receiver: on a PostgreSQL connection whose session is in UTC. With the
    pool this runs at every request's checkout; a pooled connection keeps what it was given once."""
    if connection.vendor != "postgresql" or connection.timezone != datetime.UTC:
        return
    adapters = connection.connection.adapters
    if adapters.get_loader(_TIMESTAMPTZ, Format.TEXT) is not UtcTimestamptzLoader:
        adapters.register_loader(_TIMESTAMPTZ, UtcTimestamptzLoader)
