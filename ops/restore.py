"""Restore and verify backups made by `ops.backups.backup_create`.

Every file is checked before anything touches a database: its manifest must be ours and of the
configured engine, its size and sha256 must match (a truncated or damaged file is refused), and
it must not hold migrations this code does not know (a backup from a newer release).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import connections
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from ops.backups import BACKUP_FAILURES, backup_directory, backup_lock, file_sha256, manifest_read, manifest_write
from ops.engines import engine_for_default
from pipeline_whisperer.exceptions import BackupError


@dataclass(frozen=True)
class RestoreReport:
    """Row counts after a restore (or a verification) against the manifest's."""

    path: Path
    row_counts: dict[str, int]
    mismatches: dict[str, tuple[int | None, int | None]]  # table: (manifest, database)
    migrations_to_apply: list[str]  # in the code but not in the backup: run `migrate`

    @property
    def matches(self) -> bool:
        return not self.mismatches


def backup_check(*, path: Path) -> dict[str, Any]:
    """The manifest of a backup fit to restore here; BackupError saying why not otherwise."""
    manifest = manifest_read(path=path)
    engine = engine_for_default()
    if manifest.get("engine") != engine.name:
        raise BackupError(f"{path.name} is a {manifest.get('engine')} backup; the database is {engine.name}")
    try:
        size = path.stat().st_size
    except OSError as error:
        raise BackupError(f"cannot read {path}: {error.strerror}") from error
    if size != manifest.get("size_bytes"):
        raise BackupError(f"{path.name} is {size} bytes, its manifest says {manifest.get('size_bytes')}: truncated?")
    if file_sha256(path) != manifest.get("sha256"):
        raise BackupError(f"{path.name} does not match the checksum in its manifest: the file is damaged")
    unknown = sorted({f"{app}.{name}" for app, name in manifest.get("migrations", [])} - _code_migrations())
    if unknown:
        raise BackupError(
            f"{path.name} holds migrations this code does not have ({', '.join(unknown[:3])}): "
            "restore it with the release that made it"
        )
    return manifest


def backup_restore(*, path: Path, confirm: Callable[[dict[str, Any]], bool] | None = None) -> RestoreReport:
    """Replace the configured database's contents with the backup at `path`, all or nothing.

    Checks the file first (`backup_check`); then `confirm(manifest)`, if given, must say yes.
    Holds the backup lock, so no backup runs meanwhile. Other processes should be stopped:
    PostgreSQL waits for their locks, and the restore replaces the tables under them.
    """
    manifest = backup_check(path=path)
    if confirm is not None and not confirm(manifest):
        raise BackupError("restore cancelled; the database is untouched")
    engine = engine_for_default()
    with backup_lock(directory=backup_directory()):
        connections.close_all()  # our own idle sessions must not hold the tables
        try:
            counts = engine.restore(path=path)
        except BACKUP_FAILURES as error:
            raise BackupError(f"restore failed, the database is untouched: {error}") from error
    return _report(path=path, manifest=manifest, counts=counts)


def backup_verify(*, path: Path) -> RestoreReport:
    """Restore `path` into a scratch database, compare with its manifest, drop the scratch.

    BackupError if the file is unfit or its contents differ; on success the manifest records
    when it was verified (`restore_verified_at`).
    """
    manifest = backup_check(path=path)
    try:
        counts = engine_for_default().scratch_row_counts(path=path)
    except BACKUP_FAILURES as error:
        raise BackupError(f"verification failed: {error}") from error
    report = _report(path=path, manifest=manifest, counts=counts)
    if not report.matches:
        raise BackupError(f"{path.name} restores with row counts unlike its manifest: {describe(report)}")
    manifest_write(path=path, manifest={**manifest, "restore_verified_at": timezone.now().isoformat()})
    return report


def describe(report: RestoreReport) -> str:
    """One line on a report: totals, or the tables whose counts differ."""
    if report.mismatches:
        return "; ".join(
            f"{table}: manifest {expected}, database {found}" for table, (expected, found) in report.mismatches.items()
        )
    rows = sum(report.row_counts.values())
    line = f"{rows} rows in {len(report.row_counts)} tables, as the manifest says"
    if report.migrations_to_apply:
        line += f"; {len(report.migrations_to_apply)} newer migration(s) to apply: run manage.py migrate"
    return line


def _report(*, path: Path, manifest: dict[str, Any], counts: dict[str, int]) -> RestoreReport:
    expected: dict[str, int] = manifest.get("row_counts", {})
    mismatches = {
        table: (expected.get(table), counts.get(table))
        for table in sorted(expected.keys() | counts.keys())
        if expected.get(table) != counts.get(table)
    }
    applied = {f"{app}.{name}" for app, name in manifest.get("migrations", [])}
    return RestoreReport(
        path=path,
        row_counts=counts,
        mismatches=mismatches,
        migrations_to_apply=sorted(_code_migrations() - applied),
    )


def _code_migrations() -> set[str]:
    return {f"{app}.{name}" for app, name in MigrationLoader(None, ignore_no_migrations=True).disk_migrations}
