"""The two database engines a backup knows, behind the same four verbs.

Either engine hashes the backup file while writing it, so its sha256 needs no second read of it.
PostgreSQL: `pg_dump` in custom format (zlib level 6, the format's own compression) from an
exported snapshot, so the row counts and migrations in the manifest are read from exactly the
data dumped, while pg_dump runs; its output is streamed into the file through the hash (an
archive written to a pipe has no data offsets in its table of contents: pg_restore, even with
`--jobs`, finds the blocks by reading on, as it does for our in-order restores). Restore pipes
`pg_restore`'s script straight into one psql transaction that first drops every relation in
`public`; psql reads COMMIT last from a pipe that gets it only if pg_restore finished cleanly, so
the restore lands completely or not at all.
SQLite: the online backup API into a scratch file, checked with `PRAGMA integrity_check`,
then gzip (level 6); restore copies back through the backup API, one transaction on the live file.

The engines are classes only so the flows in `ops.backups` can call the same verbs on either.
The connection comes from settings.DATABASES; the password travels in PGPASSWORD, never argv.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import sqlite3
import subprocess  # nosec B404  # runs pg_dump, pg_restore and psql with argument lists
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import psycopg
from django.conf import settings
from django.db import connections
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pipeline_whisperer.exceptions import BackupError

COMPRESSION_LEVEL = 6
_LIBPQ_OPTIONS = {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name", "options"}
# Relations a newer schema may have added are dropped too, or `migrate` would trip over them.
_DROP_PUBLIC_RELATIONS = """DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')) LOOP
    EXECUTE format('DROP %s IF EXISTS public.%I CASCADE',
      CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
      r.relname);
  END LOOP; END $$;"""


@dataclass(frozen=True)
class Snapshot:
    """What a dump holds, read in the same snapshot as the dump itself, and the file's checksum."""

    engine_version: str
    migrations: list[list[str]]  # [app, name] pairs applied, sorted
    row_counts: dict[str, int]
    sha256: str  # of the file's bytes as they were written


class _HashingWriter:
    """A binary file opened for writing that hashes every byte written through it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream, self.digest = stream, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.stream.write(data)

    def flush(self) -> None:
        self.stream.flush()


class Engine(Protocol):
    name: str
    suffix: str

    def dump(self, *, target: Path) -> Snapshot: ...
    def check_readable(self, *, path: Path) -> None: ...
    def restore(self, *, path: Path) -> dict[str, int]: ...
    def scratch_row_counts(self, *, path: Path) -> dict[str, int]: ...


def engine_for_default() -> Engine:
    """The engine of the `default` database; BackupError for any other vendor."""
    vendor = connections["default"].vendor
    if vendor == "postgresql":
        return PostgresEngine()
    if vendor == "sqlite":
        return SqliteEngine()
    raise BackupError(f"backups support PostgreSQL and SQLite, not {vendor}")


def _wait(process: subprocess.Popen[bytes], *, what: str) -> None:
    """Wait for a tool; kill it if we are interrupted, BackupError with its last line if it failed."""
    try:
        _, errors = process.communicate()
    except BaseException:
        process.kill()
        process.wait()
        raise
    if process.returncode != 0:
        lines = (errors or b"").decode(errors="replace").strip().splitlines()
        # The line that names the error, not the CONTEXT lines after it.
        named = [line for line in lines if "ERROR:" in line or "error:" in line] or lines
        raise BackupError(f"{what} failed: {named[0].strip() if named else f'exit status {process.returncode}'}")


def _start(command: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(command, stderr=subprocess.PIPE, **kwargs)  # nosec B603  # our own argument list
    except OSError as error:
        raise BackupError(f"cannot run {command[0]}: {error.strerror}") from error


class PostgresEngine:
    name = "postgresql"
    suffix = ".pgdump"

    def _conninfo(self, *, dbname: str | None = None) -> str:
        database = settings.DATABASES["default"]
        params = {"dbname": dbname or database["NAME"], "host": database["HOST"], "port": database["PORT"]}
        params["user"] = database["USER"]
        params.update({key: value for key, value in database.get("OPTIONS", {}).items() if key in _LIBPQ_OPTIONS})
        return make_conninfo(**{key: str(value) for key, value in params.items() if value})

    def _env(self) -> dict[str, str]:
        password = settings.DATABASES["default"]["PASSWORD"]
        return {**os.environ, "PGPASSWORD": password} if password else dict(os.environ)

    def _connect(self, *, dbname: str | None = None) -> psycopg.Connection[Any]:
        password = settings.DATABASES["default"]["PASSWORD"]
        extra = {"password": password} if password else {}
        try:
            return psycopg.connect(self._conninfo(dbname=dbname), autocommit=True, **extra)
        except psycopg.Error as error:
            raise BackupError(f"cannot connect to PostgreSQL: {str(error).strip().splitlines()[-1]}") from error

    def dump(self, *, target: Path) -> Snapshot:
        # closing(), not the connection's own `with`: on an interruption mid-query its rollback would
        # fail noisily; closing the session ends the read-only transaction just as well.
        with closing(self._connect()) as snapshot_holder, ThreadPoolExecutor(max_workers=1) as writer:
            snapshot_holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            snapshot_id = snapshot_holder.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
            command = ["pg_dump", "--format=custom", f"--compress={COMPRESSION_LEVEL}", "--no-password"]
            command += [f"--snapshot={snapshot_id}", f"--dbname={self._conninfo()}"]
            dumping = _start(command, env=self._env(), stdout=subprocess.PIPE)
            # A thread drains pg_dump's output while this one counts rows in the snapshot.
            written = writer.submit(_write_hashed, source=dumping.stdout, target=target)
            try:
                version = snapshot_holder.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
                migrations = _migrations(snapshot_holder.execute("SELECT app, name FROM django_migrations"))
                row_counts = _pg_row_counts(snapshot_holder)
                sha256 = written.result()
            except BaseException:
                dumping.kill()  # its output ends, so the writing thread ends too
                dumping.wait()
                raise
            _wait(dumping, what="pg_dump")
        return Snapshot(engine_version=version, migrations=migrations, row_counts=row_counts, sha256=sha256)

    def check_readable(self, *, path: Path) -> None:
        _wait(_start(["pg_restore", "--list", str(path)], stdout=subprocess.DEVNULL), what="pg_restore --list")

    def restore(self, *, path: Path) -> dict[str, int]:
        script = _start(["pg_restore", "--no-owner", "--no-acl", "--file=-", str(path)], stdout=subprocess.PIPE)
        gate, gate_writer = os.pipe()
        # psql reads pg_restore's script straight from its pipe (no copy through us), after BEGIN and
        # the drop, and then one last file, the gate, which says COMMIT only if pg_restore succeeded.
        command = ["psql", "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "-c", "BEGIN"]
        command += ["-c", _DROP_PUBLIC_RELATIONS, "-f", "-", "-f", f"/dev/fd/{gate}", f"--dbname={self._conninfo()}"]
        try:
            loading = _start(command, env=self._env(), stdin=script.stdout, stdout=subprocess.DEVNULL, pass_fds=[gate])
        except BaseException:
            os.close(gate_writer)
            script.kill()
            script.wait()
            raise
        finally:
            os.close(gate)
            assert script.stdout is not None  # noqa: S101  # nosec B101  # opened as a pipe
            script.stdout.close()  # psql's now: if psql stops, pg_restore must see its reader gone
        _commit_if_clean(script=script, loading=loading, gate=gate_writer)
        with self._connect() as connection:
            return _pg_row_counts(connection)

    def scratch_row_counts(self, *, path: Path) -> dict[str, int]:
        scratch = f"pw_verify_{uuid.uuid4().hex[:12]}"
        with self._connect(dbname="postgres") as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
            try:
                command = ["pg_restore", "--no-owner", "--no-acl", "--exit-on-error", "--no-password"]
                command += [f"--dbname={self._conninfo(dbname=scratch)}", str(path)]
                _wait(_start(command, env=self._env(), stdout=subprocess.DEVNULL), what="pg_restore")
                with self._connect(dbname=scratch) as connection:
                    return _pg_row_counts(connection)
            finally:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))


def _write_hashed(*, source: IO[bytes] | None, target: Path) -> str:
    """Copy a tool's output into `target` until it ends; the sha256 of what was written."""
    assert isinstance(source, io.BufferedReader)  # noqa: S101  # nosec B101  # opened as a pipe
    with target.open("wb") as sink:
        hashing = _HashingWriter(sink)
        while chunk := source.read1(1 << 20):
            hashing.write(chunk)
    return hashing.digest.hexdigest()


def _commit_if_clean(*, script: subprocess.Popen[bytes], loading: subprocess.Popen[bytes], gate: int) -> None:
    """Write COMMIT into psql's last file only if pg_restore finished cleanly. A gate closed empty
    ends psql's session without it, and PostgreSQL rolls it all back."""
    try:
        if script.wait() == 0:
            os.write(gate, b"COMMIT;\n")
    except BrokenPipeError:
        pass  # psql stopped at an error; its own message says which
    except BaseException:
        for process in (loading, script):
            process.kill()
            process.wait()
        raise
    finally:
        os.close(gate)
    _wait(loading, what="psql (restore rolled back)")
    _wait(script, what="pg_restore (restore rolled back)")


def _migrations(rows: Any) -> list[list[str]]:
    return sorted([app, name] for app, name in rows)


def _pg_row_counts(connection: psycopg.Connection[Any]) -> dict[str, int]:
    tables = [row[0] for row in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    query = sql.SQL("SELECT count(*) FROM public.{}")
    return {table: connection.execute(query.format(sql.Identifier(table))).fetchone()[0] for table in sorted(tables)}  # type: ignore[index]


class SqliteEngine:
    name = "sqlite"
    suffix = ".sqlite3.gz"

    def _database(self) -> Path:
        return Path(settings.DATABASES["default"]["NAME"])

    def dump(self, *, target: Path) -> Snapshot:
        copy = target.with_name(target.name + ".raw")
        try:
            source_uri = self._database().as_uri() + "?mode=ro"
            with closing(sqlite3.connect(source_uri, uri=True)) as source, closing(sqlite3.connect(copy)) as target_db:
                source.backup(target_db)
                row_counts = _sqlite_row_counts(target_db)
                migrations = _migrations(target_db.execute("SELECT app, name FROM django_migrations"))
            with copy.open("rb") as raw, target.open("wb") as sink:
                hashing = _HashingWriter(sink)
                with gzip.GzipFile(fileobj=hashing, mode="wb", compresslevel=COMPRESSION_LEVEL) as packed:
                    shutil.copyfileobj(raw, packed, 1 << 20)
        except sqlite3.Error as error:
            raise BackupError(f"SQLite backup failed: {error}") from error
        finally:
            copy.unlink(missing_ok=True)
        return Snapshot(sqlite3.sqlite_version, migrations, row_counts, sha256=hashing.digest.hexdigest())

    def check_readable(self, *, path: Path) -> None:
        """Read the whole gzip stream (its CRC and length catch damage); the pages were checked before."""
        try:
            with gzip.open(path, "rb") as packed:
                while packed.read(1 << 20):
                    pass
        except (OSError, EOFError) as error:
            raise BackupError(f"{path.name} is not a readable gzip stream: {error}") from error

    def restore(self, *, path: Path) -> dict[str, int]:
        database = self._database()
        unpacked = database.with_name(f".{database.name}.restore-{uuid.uuid4().hex[:8]}")
        try:
            with closing(_unpack(path, unpacked)) as source, closing(sqlite3.connect(database, timeout=30)) as live:
                source.backup(live)  # one step: readers see the old database or the new, never a mix
                return _sqlite_row_counts(live)
        finally:
            unpacked.unlink(missing_ok=True)

    def scratch_row_counts(self, *, path: Path) -> dict[str, int]:
        unpacked = path.with_name(f".verify-{uuid.uuid4().hex[:8]}-{path.name}.sqlite3")
        try:
            with closing(_unpack(path, unpacked)) as scratch:
                return _sqlite_row_counts(scratch)
        finally:
            unpacked.unlink(missing_ok=True)


def _unpack(path: Path, target: Path) -> sqlite3.Connection:
    """Unpack a backup to `target` and open it, refusing a file that fails the integrity check."""
    try:
        with gzip.open(path, "rb") as packed, target.open("wb") as raw:
            shutil.copyfileobj(packed, raw, 1 << 20)
        connection = sqlite3.connect(target)
        _sqlite_integrity(connection)
    except (OSError, EOFError, sqlite3.Error) as error:
        raise BackupError(f"{path.name} does not unpack to a sound SQLite database: {error}") from error
    return connection


def _sqlite_integrity(connection: sqlite3.Connection) -> None:
    verdict = connection.execute("PRAGMA integrity_check").fetchone()[0]
    if verdict != "ok":
        raise BackupError(f"SQLite integrity check failed: {verdict}")


def _sqlite_row_counts(connection: sqlite3.Connection) -> dict[str, int]:
    """Row counts of every table, once the database has passed the integrity check."""
    _sqlite_integrity(connection)
    tables = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    return {table: connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}  # noqa: S608  # nosec B608  # table names come from sqlite_master
