"""`manage.py backup` as cron runs it: a separate process against the test database."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from ops.backups import LOCK_NAME, backup_latest, backup_list, backup_lock, manifest_path
from ops.tests.bulk import LEADS_INSERT_SQL
from ops.tests.conftest import ROOT, manage, manage_env, postgres_url
from ops.tests.data import leads_with_outreach_create

pytestmark = pytest.mark.django_db(transaction=True)


def _run_backup(backup_dir, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = manage_env(DATABASE_URL=postgres_url(), BACKUP_DIR=str(backup_dir))
    return subprocess.run(  # noqa: S603  # our own manage.py
        manage("backup", *arguments), env=env, capture_output=True, text=True, check=False
    )


def test_backup_from_cron_prints_nothing_on_success(backup_dir):
    leads_with_outreach_create(count=20)
    finished = _run_backup(backup_dir)
    assert (finished.returncode, finished.stdout, finished.stderr) == (0, "", "")
    assert len(backup_list(directory=backup_dir)) == 1


def test_backup_verbose_says_what_it_wrote(backup_dir):
    out = StringIO()
    call_command("backup", "--verbose", stdout=out)
    assert out.getvalue().startswith(f"backup {backup_list()[0].path} (")


def test_backup_json_prints_the_manifest(backup_dir):
    out = StringIO()
    call_command("backup", "--json", stdout=out)
    printed = json.loads(out.getvalue())
    assert printed["path"] == str(backup_list()[0].path)
    assert printed == {**json.loads(manifest_path(backup_list()[0].path).read_text()), **printed}


def test_manifest_records_checksum_size_engine_migrations_and_row_counts(backup_dir):
    leads_with_outreach_create(count=30)
    call_command("backup")
    backup = backup_list()[0]
    manifest = json.loads(manifest_path(backup.path).read_text())
    assert manifest["size_bytes"] == backup.path.stat().st_size
    assert len(manifest["sha256"]) == 64
    assert manifest["engine"] == "postgresql" and manifest["engine_version"].startswith("15")
    assert ["leads", "0001_initial"] in manifest["migrations"]
    assert manifest["row_counts"]["leads_lead"] == 30 and manifest["row_counts"]["leads_outreach"] == 30
    assert manifest["started_at"] <= manifest["finished_at"] and manifest["app_version"] == "0.1.0"


def test_manifest_checksum_is_the_sha256_of_the_file_read_back(backup_dir):
    leads_with_outreach_create(count=30)
    call_command("backup")
    backup = backup_list()[0].path
    manifest = json.loads(manifest_path(backup).read_text())
    assert manifest["sha256"] == hashlib.sha256(backup.read_bytes()).hexdigest()


def test_backup_and_restore_run_even_when_a_system_check_fails(backup_dir, tmp_path):
    (tmp_path / "settings_failing_check.py").write_text(
        "from django.core import checks\n"
        "from pipeline_whisperer.settings import *  # noqa: F403\n"
        "checks.register(lambda app_configs, **kwargs: [checks.Error('broken on purpose', id='test.E001')])\n"
    )
    leads_with_outreach_create(count=20)
    env = manage_env(
        DATABASE_URL=postgres_url(),
        BACKUP_DIR=str(backup_dir),
        DJANGO_SETTINGS_MODULE="settings_failing_check",
        PYTHONPATH=f"{tmp_path}:{ROOT}",
    )

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(manage(*arguments), env=env, capture_output=True, text=True, check=False)  # noqa: S603

    checked = run("check")
    assert checked.returncode == 1 and "broken on purpose" in checked.stderr  # the check does fail
    assert run("backup").returncode == 0
    backup = backup_list(directory=backup_dir)[0].path
    restored = run("restore", "--yes", str(backup))
    assert (restored.returncode, restored.stderr) == (0, "")
    assert "as the manifest says" in restored.stdout


def test_a_second_overlapping_backup_exits_non_zero_with_one_line(backup_dir):
    with backup_lock(directory=backup_dir):
        finished = _run_backup(backup_dir)
    assert finished.returncode == 1 and finished.stdout == ""
    assert finished.stderr.count("\n") == 1 and "another backup or restore is running" in finished.stderr
    assert backup_list(directory=backup_dir) == []


def test_backup_interrupted_by_sigterm_leaves_no_file_and_no_lock(backup_dir):
    with connection.cursor() as cursor:
        cursor.execute(LEADS_INSERT_SQL, [200_000])
    env = manage_env(DATABASE_URL=postgres_url(), BACKUP_DIR=str(backup_dir))
    running = subprocess.Popen(  # noqa: S603  # our own manage.py
        manage("backup"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not list(backup_dir.glob(".pw-backup-*.tmp")) and running.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    running.send_signal(signal.SIGTERM)
    _, stderr = running.communicate(timeout=60)
    assert running.returncode == 1
    assert stderr.strip() == "CommandError: interrupted by SIGTERM; nothing was kept"
    assert sorted(path.name for path in backup_dir.iterdir()) == []
    assert not (backup_dir / LOCK_NAME).exists()
    with backup_lock(directory=backup_dir):  # nobody holds it: this would raise BackupBusy
        pass


def test_list_backups_shows_newest_first_and_backup_latest_returns_it(backup_dir):
    call_command("backup")
    call_command("backup")
    (backup_dir / "notes.txt").write_text("not a backup")
    out = StringIO()
    call_command("list_backups", "--json", stdout=out)
    listed = json.loads(out.getvalue())
    assert [row["path"] for row in listed] == sorted((row["path"] for row in listed), reverse=True)
    assert len(listed) == 2 and all(row["verified"] and row["engine"] == "postgresql" for row in listed)
    assert str(backup_latest().path) == listed[0]["path"]
