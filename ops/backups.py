"""Backups of the configured database: create, list, prune; the files and their manifests.

A backup is `BACKUP_DIR/pw-backup-<UTC time>.<pgdump|sqlite3.gz>` beside `<name>.json`, its
manifest (checksum, size, engine, migrations, row counts, times). Both are written to temp
names, fsynced and renamed, the manifest last: a backup without a manifest is incomplete. Any
failure or interruption removes what the run wrote. One flock in BACKUP_DIR keeps backups and
restores from overlapping; the kernel drops it when its holder dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import sqlite3
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psycopg
from django.conf import settings
from django.utils import timezone

from ops.engines import engine_for_default
from pipeline_whisperer.exceptions import BackupBusy, BackupError

MANIFEST_FORMAT = "pipeline-whisperer-backup/1"
LOCK_NAME = ".backup.lock"
_NAME = re.compile(r"^pw-backup-(\d{8}T\d{6}\.\d{6}Z)(\.pgdump|\.sqlite3\.gz)$")
_ENGINES = {".pgdump": "postgresql", ".sqlite3.gz": "sqlite"}
_TIME_FORMAT = "%Y%m%dT%H%M%S.%fZ"
# Failures of the tools, files and drivers a backup touches; each becomes one BackupError line.
BACKUP_FAILURES = (OSError, psycopg.Error, sqlite3.Error)


@dataclass(frozen=True)
class BackupInfo:
    """One backup file in BACKUP_DIR; `verified` means complete and checked readable when made."""

    path: Path
    created_at: datetime
    size_bytes: int
    engine: str
    verified: bool
    restore_verified_at: datetime | None


class _Dated(Protocol):
    @property
    def created_at(self) -> datetime: ...


Dated = TypeVar("Dated", bound=_Dated)


@dataclass(frozen=True)
class BackupCreated:
    info: BackupInfo
    manifest: dict[str, Any]
    pruned: list[Path]


def backup_directory() -> Path:
    return Path(settings.BACKUP_DIR)


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


@contextmanager
def backup_lock(*, directory: Path) -> Iterator[None]:
    """Hold the backup lock for the block; BackupBusy at once if another process holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupBusy(f"another backup or restore is running (it holds {path})") from None
        # A holder that just finished unlinked the file we opened: someone may lock a fresh one.
        if not path.exists() or path.stat().st_ino != os.fstat(descriptor).st_ino:
            raise BackupBusy(f"another backup or restore just finished or started (at {path}); try again")
        os.write(descriptor, f"{os.getpid()}\n".encode())
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # while still locked, so no one can take the doomed file
    finally:
        os.close(descriptor)


def backup_create(*, directory: Path | None = None) -> BackupCreated:
    """Back up the default database into `directory` (BACKUP_DIR), verify it, then prune old ones.

    Returns only when the backup and its manifest are on disk; otherwise raises BackupError
    (BackupBusy if a run holds the lock) and leaves no file of its own behind.
    """
    directory = directory or backup_directory()
    engine = engine_for_default()
    with backup_lock(directory=directory):
        started_at = timezone.now()
        final = directory / f"pw-backup-{started_at.strftime(_TIME_FORMAT)}{engine.suffix}"
        temporary = directory / f".{final.name}.tmp"
        try:
            snapshot = engine.dump(target=temporary)
            engine.check_readable(path=temporary)
            _fsync(temporary)
            manifest = {
                "format": MANIFEST_FORMAT,
                "file": final.name,
                "sha256": snapshot.sha256,
                "size_bytes": temporary.stat().st_size,
                "engine": engine.name,
                "engine_version": snapshot.engine_version,
                "compression": "pg_dump custom, zlib 6" if engine.name == "postgresql" else "gzip 6",
                "migrations": snapshot.migrations,
                "row_counts": snapshot.row_counts,
                "app_version": _app_version(),
                "started_at": started_at.isoformat(),
                "finished_at": timezone.now().isoformat(),
                "verified_readable": True,
            }
            os.replace(temporary, final)
            manifest_write(path=final, manifest=manifest)
        except BaseException as error:
            for leftover in (temporary, final, manifest_path(final)):
                leftover.unlink(missing_ok=True)
            if isinstance(error, BACKUP_FAILURES):
                raise BackupError(f"backup failed: {error}") from error
            raise
        pruned = backup_prune(directory=directory)
    return BackupCreated(info=_info(final), manifest=manifest, pruned=pruned)


def backup_list(*, directory: Path | None = None) -> list[BackupInfo]:
    """Our own backups in `directory` (BACKUP_DIR), newest first; other files are ignored."""
    directory = directory or backup_directory()
    if not directory.is_dir():
        return []
    backups = [_info(path) for path in directory.iterdir() if backup_name_parse(path.name) and path.is_file()]
    return sorted(backups, key=lambda backup: backup.created_at, reverse=True)


def backup_latest(*, directory: Path | None = None) -> BackupInfo | None:
    """The newest complete backup, or None (for the staff dashboard)."""
    return next((backup for backup in backup_list(directory=directory) if backup.verified), None)


def backup_prune(
    *,
    directory: Path | None = None,
    retention_days: int | None = None,
    retention_count: int | None = None,
    now: datetime | None = None,
) -> list[Path]:
    """Remove the backups in `directory` that `retention_expired` names, with their manifests,
    and temp files of dead runs. Call it holding the backup lock. Returns the removed backups."""
    directory = directory or backup_directory()
    removed = []
    expired = retention_expired(
        backup_list(directory=directory), retention_days=retention_days, retention_count=retention_count, now=now
    )
    for backup in expired:
        manifest_path(backup.path).unlink(missing_ok=True)
        backup.path.unlink(missing_ok=True)
        removed.append(backup.path)
    for leftover in directory.glob(".pw-backup-*.tmp*"):
        leftover.unlink(missing_ok=True)
    return removed


def retention_expired(
    backups: list[Dated],
    *,
    retention_days: int | None = None,
    retention_count: int | None = None,
    now: datetime | None = None,
) -> list[Dated]:
    """The backups (newest first) older than `retention_days` or beyond the newest
    `retention_count` (0 turns either limit off; None means the BACKUP_RETENTION_* setting).
    Never the newest backup. The one rule for local and off-site copies."""
    days = settings.BACKUP_RETENTION_DAYS if retention_days is None else retention_days
    count = settings.BACKUP_RETENTION_COUNT if retention_count is None else retention_count
    oldest_kept = (now or timezone.now()) - timedelta(days=days)
    return [
        backup
        for position, backup in enumerate(backups)
        if position > 0 and ((days > 0 and backup.created_at < oldest_kept) or (count > 0 and position >= count))
    ]


def backup_name_parse(name: str) -> tuple[datetime, str] | None:
    """When a backup of this file name was made, and its engine; None if the name is not ours."""
    match = _NAME.match(name)
    if match is None:
        return None
    return datetime.strptime(match.group(1), _TIME_FORMAT).replace(tzinfo=UTC), _ENGINES[match.group(2)]


def backup_resolve(name: str) -> Path:
    """A path as given, or else a file of that name in BACKUP_DIR."""
    path = Path(name)
    if not path.exists() and (backup_directory() / name).exists():
        return backup_directory() / name
    return path


def manifest_read(*, path: Path) -> dict[str, Any]:
    """The manifest beside `path`; BackupError if there is none or it is not ours."""
    try:
        manifest = json.loads(manifest_path(path).read_text())
    except FileNotFoundError:
        raise BackupError(f"{path.name} has no manifest beside it: not a backup made by manage.py backup") from None
    except (OSError, ValueError) as error:
        raise BackupError(f"the manifest of {path.name} is unreadable: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise BackupError(f"the manifest of {path.name} is not a {MANIFEST_FORMAT} manifest")
    return manifest


def manifest_write(*, path: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest of `path` atomically (temp file, fsync, rename, fsync the directory)."""
    target = manifest_path(path)
    temporary = target.with_name(f".{path.name}.tmp.json")
    temporary.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    _fsync(temporary)
    os.replace(temporary, target)
    _fsync(target.parent)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _info(path: Path) -> BackupInfo:
    parsed = backup_name_parse(path.name)
    assert parsed is not None  # noqa: S101  # nosec B101  # callers pass only names the pattern accepted
    try:
        manifest = manifest_read(path=path)
    except BackupError:
        manifest = {}
    verified_at = manifest.get("restore_verified_at")
    return BackupInfo(
        path=path,
        created_at=parsed[0],
        size_bytes=path.stat().st_size,
        engine=parsed[1],
        verified=bool(manifest.get("verified_readable")),
        restore_verified_at=datetime.fromisoformat(verified_at) if verified_at else None,
    )


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _app_version() -> str:
    try:
        with (Path(settings.BASE_DIR) / "pyproject.toml").open("rb") as stream:
            return str(tomllib.load(stream)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"
