"""Leadership for work that must have one runner at a time (the outbox relay keeps per-key
order only if one process publishes)."""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection

from pipeline_whisperer.worker_probes import WORKER_HEALTH

logger = logging.getLogger(__name__)


@contextmanager
def leadership(name: str, stop: threading.Event, *, poll_seconds: float = 2.0) -> Iterator[bool]:
    """Hold a PostgreSQL session advisory lock named `name` for the block; wait for it while
    another process holds it. Yields False if `stop` was set before the lock was won.

    The lock lives on a connection of its own, outside Django's pool, so it is held exactly as
    long as this process lives: if the leader dies, PostgreSQL releases it at once.
    On SQLite (one process by design) leadership is immediate.
    """
    if connection.vendor != "postgresql":
        yield not stop.is_set()
        return
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    key = zlib.crc32(name.encode())
    with psycopg.connect(**params, autocommit=True) as lock_connection:
        waiting_logged = False
        while not stop.is_set():
            acquired = lock_connection.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
            if acquired is not None and acquired[0]:
                logger.info("leadership of %s taken", name)
                yield True
                return
            if not waiting_logged:
                logger.info("another process leads %s; standing by", name)
                waiting_logged = True
            WORKER_HEALTH.beat(name)  # a standby is alive
            stop.wait(poll_seconds)
        yield False
