"""Fixtures for the backup tests: a backup directory of the test's own, and the database as data."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def backup_dir(tmp_path: Path, settings: Any) -> Path:
    """BACKUP_DIR pointed at a fresh directory for this test."""
    directory = tmp_path / "backups"
    settings.BACKUP_DIR = directory
    return directory


def table_contents() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the default database, in a stable order."""
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        contents = {}
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            contents[table] = sorted(cursor.fetchall(), key=repr)
    return contents


def postgres_url() -> str:
    """The test database as a DATABASE_URL, for commands run as separate processes."""
    database = django_settings.DATABASES["default"]
    return f"postgres://{database['USER']}@{database['HOST']}:{database['PORT'] or 5432}/{database['NAME']}"


def manage_env(**overrides: str) -> dict[str, str]:
    return {**os.environ, "DJANGO_DEBUG": "0", **overrides}


def manage(*arguments: str) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), *arguments]
