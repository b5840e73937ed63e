"""Backup and restore on SQLite (the embedded shape): the commands run as processes on a SQLite file."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from ops.backups import backup_list, manifest_path
from ops.tests.conftest import manage, manage_env


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    """A migrated SQLite database with 10,000 leads and their outreach, and a backup directory."""
    env = manage_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", BACKUP_DIR=str(tmp_path / "backups"))
    _manage(env, "migrate", "-v0")
    seed = "from ops.tests.data import leads_with_outreach_create as make; make(count=10_000)"
    _manage(env, "shell", "-v0", "-c", seed)
    return env


def _manage(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(manage(*arguments), env=env, capture_output=True, text=True, check=False)  # noqa: S603


def _contents(env: dict[str, str]) -> dict[str, list[tuple[Any, ...]]]:
    with closing(sqlite3.connect(env["DATABASE_URL"].removeprefix("sqlite:///"))) as database:
        tables = [row[0] for row in database.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: sorted(database.execute(f'SELECT * FROM "{table}"'), key=repr) for table in tables}  # noqa: S608


def _mutate(env: dict[str, str]) -> None:
    with closing(sqlite3.connect(env["DATABASE_URL"].removeprefix("sqlite:///"))) as database, database:
        database.execute("DELETE FROM leads_outreach WHERE id % 3 = 0")
        database.execute("UPDATE leads_lead SET company_name = 'changed' WHERE id < 100")


def test_restore_brings_back_every_row_of_every_table_on_sqlite(sqlite_env):
    before = _contents(sqlite_env)
    assert len(before["leads_lead"]) == len(before["leads_outreach"]) == 10_000
    assert _manage(sqlite_env, "backup").returncode == 0
    _mutate(sqlite_env)
    backup = backup_list(directory=Path(sqlite_env["BACKUP_DIR"]))[0]
    assert (
        json.loads(manifest_path(backup.path).read_text())["sha256"]
        == hashlib.sha256(backup.path.read_bytes()).hexdigest()
    )  # hashed while written

    restored = _manage(sqlite_env, "restore", "--noinput", str(backup.path))

    assert restored.returncode == 0, restored.stderr
    assert _contents(sqlite_env) == before


def test_restore_refuses_a_corrupted_sqlite_backup_and_leaves_the_database_untouched(sqlite_env):
    assert _manage(sqlite_env, "backup").returncode == 0
    _mutate(sqlite_env)
    before = _contents(sqlite_env)
    backup = backup_list(directory=Path(sqlite_env["BACKUP_DIR"]))[0].path
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 0xFF
    backup.write_bytes(bytes(data))

    refused = _manage(sqlite_env, "restore", "--yes", str(backup))

    assert refused.returncode == 1
    assert (
        refused.stderr.strip()
        == f"CommandError: {backup.name} does not match the checksum in its manifest: the file is damaged"
    )
    assert _contents(sqlite_env) == before
