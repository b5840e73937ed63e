"""Backup and restore on PostgreSQL through the commands, as an operator runs them."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from io import StringIO
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from ops.backups import LOCK_NAME, backup_create, manifest_path
from ops.tests.bulk import LEADS_INSERT_SQL
from ops.tests.conftest import manage, manage_env, postgres_url, table_contents
from ops.tests.data import leads_with_outreach_create

pytestmark = pytest.mark.django_db(transaction=True)
# By app label, not imported: ops imports no app (ops/tests/data.py says why).
Lead, Outreach = apps.get_model("leads", "Lead"), apps.get_model("leads", "Outreach")


@pytest.fixture
def backup(backup_dir: Path) -> Path:
    leads_with_outreach_create(count=200)
    return backup_create().info.path


def _restore(path: Path) -> str:
    out = StringIO()
    call_command("restore", str(path), "--yes", stdout=out)
    return out.getvalue()


def _refused_untouched(path: Path, *, match: str) -> None:
    """A row written after the backup; the restore of `path` fails with `match`; every row is as it was."""
    Lead.objects.create(lightfield_id="after-backup", company_name="New")
    before = table_contents()
    with pytest.raises(CommandError, match=match):
        _restore(path)
    assert table_contents() == before


def test_restore_brings_back_every_row_of_every_table(backup_dir):
    leads_with_outreach_create(count=10_000)
    before = table_contents()
    path = backup_create().info.path
    Outreach.objects.filter(id__in=Outreach.objects.order_by("id").values("id")[:500]).delete()
    Lead.objects.filter(id__in=Lead.objects.order_by("id").values("id")[:100]).update(company_name="changed")
    Lead.objects.create(lightfield_id="after-backup", company_name="New")

    output = _restore(path)

    assert table_contents() == before
    assert f"restored {path.name}: " in output and "as the manifest says" in output


def test_restore_drops_tables_the_backup_does_not_have(backup):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE from_a_newer_release (id int)")
    _restore(backup)
    assert "from_a_newer_release" not in connection.introspection.table_names()


def test_restore_refuses_a_corrupted_file_and_leaves_the_database_untouched(backup):
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 0xFF
    backup.write_bytes(bytes(data))
    _refused_untouched(backup, match="does not match the checksum")


def test_restore_refuses_a_truncated_file_and_leaves_the_database_untouched(backup):
    backup.write_bytes(backup.read_bytes()[: backup.stat().st_size // 2])
    _refused_untouched(backup, match="truncated")


def test_a_restore_that_fails_part_way_is_rolled_back_and_the_database_untouched(backup):
    # Damage that the manifest agrees with (as if made before it was written): only pg_restore sees it,
    # after psql has begun loading; without COMMIT from the gate, psql's session rolls back.
    damaged = backup.read_bytes()[: backup.stat().st_size * 9 // 10]
    backup.write_bytes(damaged)
    manifest = json.loads(manifest_path(backup).read_text())
    manifest.update(size_bytes=len(damaged), sha256=hashlib.sha256(damaged).hexdigest())
    manifest_path(backup).write_text(json.dumps(manifest))
    _refused_untouched(backup, match=r"^pg_restore \(restore rolled back\) failed: ")


def test_restore_interrupted_by_sigterm_while_loading_leaves_the_database_untouched(backup_dir):
    with connection.cursor() as cursor:
        cursor.execute(LEADS_INSERT_SQL, [200_000])
    path = backup_create().info.path
    Lead.objects.filter(lightfield_id="bulk-1").update(company_name="changed after the backup")
    running = subprocess.Popen(  # noqa: S603  # our own manage.py
        manage("restore", "--yes", str(path)),
        env=manage_env(DATABASE_URL=postgres_url(), BACKUP_DIR=str(backup_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    loading = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'psql' AND state = 'active' AND datname = current_database()"
    )
    deadline, seen_loading = time.monotonic() + 120, False
    with connection.cursor() as cursor:
        while not seen_loading and running.poll() is None and time.monotonic() < deadline:
            cursor.execute(loading)
            seen_loading = cursor.fetchone()[0] > 0
            time.sleep(0.01)
    running.send_signal(signal.SIGTERM)
    _, stderr = running.communicate(timeout=120)
    assert seen_loading  # psql was loading the backup when the signal came
    assert (running.returncode, stderr.strip()) == (1, "CommandError: interrupted by SIGTERM; nothing was kept")
    assert Lead.objects.count() == 200_000
    assert Lead.objects.get(lightfield_id="bulk-1").company_name == "changed after the backup"
    assert not (backup_dir / LOCK_NAME).exists()


def test_restore_refuses_a_foreign_dump_without_a_manifest(backup_dir, tmp_path):
    leads_with_outreach_create(count=10)
    foreign = tmp_path / "plain.dump"
    database = connection.settings_dict
    plain_dump = [
        "pg_dump",
        "-Fc",
        "-h",
        database["HOST"],
        "-U",
        database["USER"],
        "-f",
        str(foreign),
        database["NAME"],
    ]
    subprocess.run(plain_dump, check=True)  # noqa: S603  # the plain tool: a dump that is not ours
    _refused_untouched(foreign, match="has no manifest beside it")


def test_restore_refuses_a_backup_with_migrations_newer_than_the_code(backup):
    manifest = json.loads(manifest_path(backup).read_text())
    manifest["migrations"].append(["leads", "9999_from_the_future"])
    manifest_path(backup).write_text(json.dumps(manifest))
    _refused_untouched(backup, match=r"migrations this code does not have \(leads.9999_from_the_future\)")


def test_restore_does_nothing_unless_the_operator_confirms(backup, monkeypatch):
    Lead.objects.create(lightfield_id="after-backup", company_name="New")
    before = table_contents()
    monkeypatch.setattr("builtins.input", lambda question: "no")
    with pytest.raises(CommandError, match="restore cancelled"):
        call_command("restore", str(backup), stdout=StringIO())
    assert table_contents() == before


def test_verify_backup_compares_a_scratch_restore_with_the_manifest_and_drops_it(backup):
    out = StringIO()
    call_command("verify_backup", "--latest", stdout=out)
    assert "as the manifest says" in out.getvalue()
    assert "restore_verified_at" in json.loads(manifest_path(backup).read_text())
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'pw_verify_%%'")
        assert cursor.fetchone()[0] == 0


def test_verify_backup_refuses_a_corrupted_file(backup):
    backup.write_bytes(backup.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CommandError, match="does not match the checksum"):
        call_command("verify_backup", str(backup), stdout=StringIO())
