"""Retention: by age and count, only our own files, never the newest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ops.backups import MANIFEST_FORMAT, backup_prune

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _backup(directory: Path, *, days_old: float) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    made = NOW - timedelta(days=days_old)
    path = directory / f"pw-backup-{made:%Y%m%dT%H%M%S.%f}Z.pgdump"
    path.write_bytes(b"dump")
    (directory / f"{path.name}.json").write_text(json.dumps({"format": MANIFEST_FORMAT, "verified_readable": True}))
    return path


def _names(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()}


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "backups"


def test_prune_removes_backups_older_than_the_retention_days_with_their_manifests(directory):
    keep, old = _backup(directory, days_old=6.9), _backup(directory, days_old=7.1)
    removed = backup_prune(directory=directory, retention_days=7, retention_count=0, now=NOW)
    assert removed == [old]
    assert _names(directory) == {keep.name, f"{keep.name}.json"}


def test_prune_keeps_only_the_newest_retention_count_backups(directory):
    backups = [_backup(directory, days_old=age) for age in (0, 1, 2, 3)]
    removed = backup_prune(directory=directory, retention_days=0, retention_count=2, now=NOW)
    assert removed == backups[2:]


def test_prune_never_removes_the_newest_backup_however_old(directory):
    only = _backup(directory, days_old=30)
    assert backup_prune(directory=directory, retention_days=7, retention_count=0, now=NOW) == []
    assert only.exists()


def test_prune_leaves_files_that_are_not_ours(directory):
    _backup(directory, days_old=0)
    foreign = ["notes.txt", "pw-backup-manual.pgdump", "other-20200101T000000.000000Z.pgdump", ".backup.lock"]
    for name in foreign:
        (directory / name).write_text("keep me")
    backup_prune(directory=directory, retention_days=1, retention_count=1, now=NOW)
    assert set(foreign) <= _names(directory)


def test_prune_removes_temp_files_of_dead_runs(directory):
    newest = _backup(directory, days_old=0)
    (directory / f".{newest.name}.tmp").write_bytes(b"half a dump")
    backup_prune(directory=directory, retention_days=7, retention_count=0, now=NOW)
    assert _names(directory) == {newest.name, f"{newest.name}.json"}
