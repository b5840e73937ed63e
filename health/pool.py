"""Typed access to the psycopg pool behind a database alias (the backend's `pool` is untyped)."""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.postgresql.base import DatabaseWrapper
from psycopg_pool import ConnectionPool


def connection_pool(alias: str = DEFAULT_DB_ALIAS) -> ConnectionPool[Any] | None:
    """This process's pool for `alias`; None on SQLite or when OPTIONS has no "pool"."""
    connection = connections[alias]
    if not isinstance(connection, DatabaseWrapper):
        return None
    pool: ConnectionPool[Any] | None = connection.pool
    return pool
