"""Our own generic django-health-check checks: the database through the pool with a short
timeout, migrations applied, the Kafka brokers and the connection pool. Apps add their own
checks (built on `ProbeCheck`) through `health.registry`.

Each check is a dataclass whose `run()` raises ServiceUnavailable (down) or ServiceWarning
(working, but look). Checks that measure something keep it in `details` for /health/detailed.
Synchronous checks run in worker threads, so each closes the database connection it opened
(`own_connection`).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import health_check
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from health_check.exceptions import ServiceUnavailable, ServiceWarning
from psycopg_pool import PoolTimeout

from health.pool import connection_pool
from pipeline_whisperer.kafka import kafka_config

# Once this process has seen every migration applied it stays so (its code cannot change), so
# probes stop reading the migration files and the django_migrations table.
_migrations_seen_applied = False


@contextmanager
def own_connection() -> Iterator[None]:
    """Close this thread's database connection afterwards (returning it to the pool); for checks
    that query the database, as they run in worker threads."""
    try:
        yield
    finally:
        connections[DEFAULT_DB_ALIAS].close()


class ProbeCheck(health_check.HealthCheck):
    """A check whose time budget is HEALTH_CHECK_TIMEOUT_SECONDS and that may report details."""

    @property
    def timeout(self) -> datetime.timedelta:
        return datetime.timedelta(seconds=settings.HEALTH_CHECK_TIMEOUT_SECONDS)

    @property
    def details(self) -> dict[str, Any]:
        return self.__dict__.setdefault("_details", {})


@dataclasses.dataclass
class Database(ProbeCheck, health_check.Database):
    """SELECT 1; with a pool, on a pooled connection waited for at most the probe's timeout
    (Django's own wait is DB_POOL_TIMEOUT_SECONDS, too long for a probe)."""

    def run(self) -> None:
        pool = connection_pool(self.alias)
        if pool is None:
            super().run()
            return
        pool.open()  # as Django does on first use; a no-op once open
        try:
            with pool.connection(timeout=self.timeout.total_seconds()) as connection:
                connection.execute("SELECT 1")
                self.details["server_version"] = connection.info.server_version
        except PoolTimeout as error:
            raise ServiceUnavailable("No database connection within the timeout") from error
        except Exception as error:  # psycopg's errors: the database answered badly
            raise ServiceUnavailable(type(error).__name__) from error


@dataclasses.dataclass
class Migrations(ProbeCheck):
    """Every migration on disk is applied (a new release must not serve an old schema)."""

    def run(self) -> None:
        global _migrations_seen_applied
        if _migrations_seen_applied:
            return
        with own_connection():
            try:
                executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
                plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
            except Exception as error:  # the database is down: the Database check says why
                raise ServiceUnavailable("Cannot read the applied migrations") from error
        if plan:
            self.details["unapplied"] = [f"{migration.app_label}.{migration.name}" for migration, _ in plan]
            raise ServiceUnavailable(f"{len(plan)} migration(s) not applied")
        _migrations_seen_applied = True


@dataclasses.dataclass
class KafkaBroker(ProbeCheck):
    """The brokers answer a metadata request within the timeout (no topics needed)."""

    def run(self) -> None:
        seconds = self.timeout.total_seconds()
        admin = AdminClient({**kafka_config(), "socket.timeout.ms": int(seconds * 1000)})
        try:
            metadata = admin.list_topics(timeout=seconds)
        except KafkaException as error:
            raise ServiceUnavailable("No answer from the Kafka brokers") from error
        self.details["brokers"] = len(metadata.brokers)


@dataclasses.dataclass
class DatabasePool(ProbeCheck):
    """This process's connection pool (PostgreSQL only); a warning while requests wait for it."""

    def run(self) -> None:
        pool = connection_pool()
        if pool is None:
            self.details["pooled"] = False
            return
        stats = pool.get_stats()
        self.details.update(pooled=True, **stats)
        if stats.get("requests_waiting", 0):
            raise ServiceWarning(f"{stats['requests_waiting']} request(s) waiting for a connection")
