"""Off-site backups against a real S3-compatible server: moto's server mode on a free loopback port.

Every call goes over HTTP through boto3, as against AWS, MinIO or R2; each test has its own bucket.
What moto 5.2.5 does with checksums, and so what these tests can show: it reports ChecksumSHA256
for what it stored, the whole-object digest for a single PUT and the composite of the parts' for
a multipart upload (without the "-<parts>" suffix AWS adds), so our comparison runs against a
real answer; it does not refuse a part whose sent checksum is wrong, as AWS does, so that
server-side check is AWS's, not tested here.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from moto.server import ThreadedMotoServer

from ops import remote
from ops.backups import MANIFEST_FORMAT, backup_list, manifest_write
from ops.cli import terminal_progress
from ops.tests.conftest import manage, manage_env, postgres_url, table_contents
from ops.tests.data import leads_with_outreach_create
from pipeline_whisperer.exceptions import BackupError

Lead = apps.get_model("leads", "Lead")
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Store:
    endpoint: str
    bucket: str
    url: str  # BACKUP_REMOTE_URL: s3://bucket/nightly
    client: Any

    def object_keys(self) -> list[str]:
        return sorted(entry["Key"] for entry in self.client.list_objects_v2(Bucket=self.bucket).get("Contents", []))

    def env(self) -> dict[str, str]:
        """What a `manage.py` process needs to use this store."""
        return {"BACKUP_REMOTE_URL": self.url, "BACKUP_REMOTE_ENDPOINT_URL": self.endpoint, "AWS_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def store(s3_endpoint: str, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Store:
    """A fresh bucket; BACKUP_REMOTE_* pointed at it; credentials only in the environment, as in production."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)  # no profile of the machine's, no instance metadata
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    bucket = f"pw-test-{uuid.uuid4().hex[:12]}"
    client = boto3.session.Session().client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=bucket)
    settings.BACKUP_REMOTE_URL = f"s3://{bucket}/nightly"
    settings.BACKUP_REMOTE_ENDPOINT_URL = s3_endpoint
    settings.BACKUP_REMOTE_REGION = "us-east-1"
    return Store(endpoint=s3_endpoint, bucket=bucket, url=settings.BACKUP_REMOTE_URL, client=client)


def _restore(url: str) -> str:
    out = StringIO()
    call_command("restore", url, "--yes", stdout=out)
    return out.getvalue()


def _replace_remote(store: Store, key: str, data: bytes) -> None:
    store.client.put_object(Bucket=store.bucket, Key=key, Body=data)


def _free_port() -> int:
    """A port nothing listens on: bound, then released."""
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- PostgreSQL, through the commands in this process ---------------------------------------


@pytest.mark.django_db(transaction=True)
def test_backup_uploads_and_restore_from_s3_brings_back_every_row(backup_dir, store):
    leads_with_outreach_create(count=2_000)
    before = table_contents()
    call_command("backup")
    [backup] = backup_list()
    assert store.object_keys() == [f"nightly/{backup.path.name}", f"nightly/{backup.path.name}.json"]
    remote_manifest = store.client.get_object(Bucket=store.bucket, Key=f"nightly/{backup.path.name}.json")
    assert json.loads(remote_manifest["Body"].read()) == json.loads(Path(f"{backup.path}.json").read_text())
    shutil.rmtree(backup_dir)  # the host is lost: only the off-site copy is left
    Lead.objects.filter(id__in=Lead.objects.order_by("id").values("id")[:100]).delete()
    Lead.objects.create(lightfield_id="after-backup", company_name="New")

    output = _restore(f"{store.url}/{backup.path.name}")

    assert table_contents() == before
    assert f"restored {backup.path.name}: " in output and "as the manifest says" in output
    assert list(backup_dir.iterdir()) == []  # the download is gone, the lock released


@pytest.mark.django_db(transaction=True)
def test_restore_refuses_a_corrupted_remote_object_and_leaves_the_database_untouched(backup_dir, store):
    leads_with_outreach_create(count=200)
    call_command("backup")
    name = backup_list()[0].path.name
    data = bytearray(store.client.get_object(Bucket=store.bucket, Key=f"nightly/{name}")["Body"].read())
    data[len(data) // 2] ^= 0xFF
    _replace_remote(store, f"nightly/{name}", bytes(data))
    Lead.objects.create(lightfield_id="after-backup", company_name="New")
    before = table_contents()

    with pytest.raises(CommandError, match=f"{name} does not match the checksum in its manifest"):
        _restore(f"{store.url}/{name}")

    assert table_contents() == before
    assert sorted(path.name for path in backup_dir.iterdir()) == [name, f"{name}.json"]  # no download left


@pytest.mark.django_db(transaction=True)
def test_restore_refuses_a_truncated_remote_object_and_leaves_the_database_untouched(backup_dir, store):
    leads_with_outreach_create(count=200)
    call_command("backup")
    name = backup_list()[0].path.name
    data = store.client.get_object(Bucket=store.bucket, Key=f"nightly/{name}")["Body"].read()
    _replace_remote(store, f"nightly/{name}", data[: len(data) // 2])
    Lead.objects.create(lightfield_id="after-backup", company_name="New")
    before = table_contents()

    with pytest.raises(CommandError, match="truncated"):
        _restore(f"{store.url}/{name}")

    assert table_contents() == before


@pytest.mark.django_db(transaction=True)
def test_restore_of_a_backup_not_in_the_store_says_so(backup_dir, store):
    with pytest.raises(
        CommandError, match=r"pw-backup-20200101T000000\.000000Z\.pgdump or its manifest is not in the store"
    ):
        _restore(f"{store.url}/pw-backup-20200101T000000.000000Z.pgdump")


@pytest.mark.django_db(transaction=True)
def test_verify_backup_remote_latest_restores_the_newest_remote_backup_into_a_scratch_database(backup_dir, store):
    leads_with_outreach_create(count=100)
    call_command("backup")
    shutil.rmtree(backup_dir)
    out = StringIO()
    call_command("verify_backup", "--remote", "--latest", stdout=out)
    assert out.getvalue().startswith("verified pw-backup-") and "as the manifest says" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_list_backups_remote_shows_complete_and_incomplete_remote_backups(backup_dir, store, settings):
    call_command("backup")
    _replace_remote(store, "nightly/pw-backup-20200101T000000.000000Z.pgdump", b"no manifest")
    _replace_remote(store, "nightly/notes.txt", b"not a backup")
    out = StringIO()
    call_command("list_backups", "--remote", "--json", stdout=out)
    listed = json.loads(out.getvalue())
    assert [(row["url"], row["complete"]) for row in listed] == [
        (f"{store.url}/{backup_list()[0].path.name}", True),
        (f"{store.url}/pw-backup-20200101T000000.000000Z.pgdump", False),
    ]
    assert listed[0]["size_bytes"] == backup_list()[0].size_bytes and listed[0]["engine"] == "postgresql"


@pytest.mark.django_db(transaction=True)
def test_backup_applies_remote_retention_after_the_upload(backup_dir, store, settings):
    settings.BACKUP_REMOTE_RETENTION_COUNT = 2
    for _ in range(3):
        call_command("backup")
    names = [backup.path.name for backup in backup_list()]
    assert len(names) == 3  # local retention (7 days, no count) keeps all three
    assert store.object_keys() == [f"nightly/{name}{suffix}" for name in sorted(names)[1:] for suffix in ("", ".json")]


# --- the store unreachable: cron's view --------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_backup_with_the_store_unreachable_keeps_the_local_backup_and_exits_1_with_one_line(backup_dir, store):
    leads_with_outreach_create(count=20)
    env = manage_env(
        DATABASE_URL=postgres_url(),
        BACKUP_DIR=str(backup_dir),
        **{**store.env(), "BACKUP_REMOTE_ENDPOINT_URL": f"http://127.0.0.1:{_free_port()}"},
    )
    finished = subprocess.run(manage("backup"), env=env, capture_output=True, text=True, check=False)  # noqa: S603

    assert finished.returncode == 1 and finished.stdout == ""
    assert finished.stderr.count("\n") == 1
    [backup] = backup_list(directory=backup_dir)
    assert finished.stderr.startswith(
        f"CommandError: upload to {store.url}/{backup.path.name} failed, {backup.path} is kept: "
        "Could not connect to the endpoint URL"
    )
    assert backup.verified


@pytest.mark.django_db(transaction=True)
def test_backup_interrupted_during_the_upload_says_the_local_backup_is_kept(backup_dir, store):
    leads_with_outreach_create(count=20)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        env = manage_env(
            DATABASE_URL=postgres_url(),
            BACKUP_DIR=str(backup_dir),
            **{**store.env(), "BACKUP_REMOTE_ENDPOINT_URL": f"http://127.0.0.1:{silent.getsockname()[1]}"},
        )
        running = subprocess.Popen(manage("backup"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603
        connection, _ = silent.accept()  # the upload has begun: the local backup is complete
        running.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        connection.close()  # the store goes away too, so the transfer threads stop waiting for it
    _, stderr = running.communicate(timeout=60)

    assert running.returncode == 1
    [backup] = backup_list(directory=backup_dir)
    upload = f"{store.url}/{backup.path.name}"
    assert (
        stderr.strip() == f"CommandError: interrupted by SIGTERM during the upload to {upload}; {backup.path} is kept"
    )
    assert backup.verified


# --- SQLite (the embedded shape), as processes ----------------------------------------------


def _sqlite_contents(database: Path) -> dict[str, list[tuple[Any, ...]]]:
    with closing(sqlite3.connect(database)) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: sorted(connection.execute(f'SELECT * FROM "{table}"'), key=repr) for table in tables}  # noqa: S608


def test_sqlite_backup_uploads_silently_and_restores_from_s3_with_every_row(tmp_path, store):
    database = tmp_path / "db.sqlite3"
    env = manage_env(DATABASE_URL=f"sqlite:///{database}", BACKUP_DIR=str(tmp_path / "backups"), **store.env())

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(manage(*arguments), env=env, capture_output=True, text=True, check=False)  # noqa: S603

    assert run("migrate", "-v0").returncode == 0
    seed = "from ops.tests.data import leads_with_outreach_create as make; make(count=1_000)"
    assert run("shell", "-v0", "-c", seed).returncode == 0
    before = _sqlite_contents(database)
    backed_up = run("backup")
    assert (backed_up.returncode, backed_up.stdout, backed_up.stderr) == (0, "", "")
    [key, _manifest_key] = store.object_keys()
    shutil.rmtree(tmp_path / "backups")
    with closing(sqlite3.connect(database)) as connection, connection:
        connection.execute("DELETE FROM leads_outreach WHERE id % 3 = 0")
        connection.execute("UPDATE leads_lead SET company_name = 'changed' WHERE id < 100")

    restored = run("restore", "--noinput", f"s3://{store.bucket}/{key}")

    assert restored.returncode == 0, restored.stderr
    assert _sqlite_contents(database) == before


# --- the S3 side on its own ---------------------------------------------------------------------


def _fake_backup(directory: Path, *, made: datetime, data: bytes = b"dump") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"pw-backup-{made:%Y%m%dT%H%M%S.%f}Z.pgdump"
    path.write_bytes(data)
    manifest_write(path=path, manifest={"format": MANIFEST_FORMAT, "verified_readable": True, "file": path.name})
    return path


def test_a_multipart_upload_is_checked_against_its_composite_sha256_and_encrypted(backup_dir, store, settings):
    settings.BACKUP_REMOTE_SSE = "AES256"
    data = os.urandom(remote.PART_SIZE + 1_000_000)  # two parts
    path = _fake_backup(backup_dir, made=NOW, data=data)

    stored = remote.remote_store(path=path)

    key = f"nightly/{path.name}"
    head = store.client.head_object(Bucket=store.bucket, Key=key, ChecksumMode="ENABLED")
    assert stored.url == f"{store.url}/{path.name}" and head["ETag"].endswith('-2"')
    assert head["ChecksumSHA256"].split("-")[0] == remote.sha256_checksum(path=path, part_size=remote.PART_SIZE)
    assert head["ServerSideEncryption"] == "AES256"
    path.unlink()
    with remote.remote_download(url=stored.url) as downloaded:
        assert downloaded.read_bytes() == data


def test_remote_retention_keeps_what_it_says(tmp_path, store, settings):
    location = remote.remote_location()
    for days_old in (0, 1, 6.9, 7.1, 30):
        path = _fake_backup(tmp_path, made=NOW - timedelta(days=days_old))
        for name in (path.name, f"{path.name}.json"):
            store.client.upload_file(str(tmp_path / name), store.bucket, location.key(name))
    _replace_remote(store, "nightly/pw-backup-manual.pgdump", b"not ours by name")
    _replace_remote(store, "elsewhere/pw-backup-20200101T000000.000000Z.pgdump", b"outside the prefix")
    settings.BACKUP_REMOTE_RETENTION_DAYS, settings.BACKUP_REMOTE_RETENTION_COUNT = 7, 0

    by_age = remote.remote_prune(now=NOW)

    kept = [backup.created_at for backup in remote.remote_list()]
    assert kept == [NOW - timedelta(days=days) for days in (0, 1, 6.9)]
    assert by_age == [
        f"{store.url}/pw-backup-{NOW - timedelta(days=days):%Y%m%dT%H%M%S.%f}Z.pgdump" for days in (7.1, 30)
    ]
    assert {"nightly/pw-backup-manual.pgdump", "elsewhere/pw-backup-20200101T000000.000000Z.pgdump"} <= set(
        store.object_keys()
    )

    settings.BACKUP_REMOTE_RETENTION_DAYS, settings.BACKUP_REMOTE_RETENTION_COUNT = 0, 1
    remote.remote_prune(now=NOW + timedelta(days=365))  # everything is old now: the newest stays anyway
    assert [backup.created_at for backup in remote.remote_list()] == [NOW]
    assert len([key for key in store.object_keys() if key.startswith("nightly/pw-backup-2")]) == 2  # file and manifest


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("", "BACKUP_REMOTE_URL is not set"),
        ("https://bucket/prefix", "is not s3://bucket/prefix"),
        ("s3://Not_A_Bucket/x", "is not s3://bucket/prefix"),
    ],
)
def test_a_remote_url_that_is_not_s3_is_refused_in_one_line(url, error, settings):
    settings.BACKUP_REMOTE_URL = url
    with pytest.raises(BackupError, match=error):
        remote.remote_location()


def test_remote_location_takes_the_prefix_with_or_without_slashes():
    assert remote.remote_location("s3://my-bucket").url("x") == "s3://my-bucket/x"
    assert remote.remote_location("s3://my-bucket/a/b/").url("x") == "s3://my-bucket/a/b/x"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_and_nowhere_else():
    assert terminal_progress(verb="upload", name="b", total=100, stream=io.StringIO()) is None
    screen = _Terminal()
    progress = terminal_progress(verb="upload", name="pw-backup-x.pgdump", total=4_000_000, stream=screen)
    assert progress is not None
    for _ in range(4):
        progress(1_000_000)
    assert (
        screen.getvalue()
        == "".join(
            f"\rupload pw-backup-x.pgdump: {percent}% ({done:.1f} of 4.0 MB)"
            for percent, done in ((25, 1.0), (50, 2.0), (75, 3.0), (100, 4.0))
        )
        + "\n"
    )


def test_an_upload_whose_stored_checksum_differs_from_the_file_is_refused_and_removed(backup_dir, store):
    path = _fake_backup(backup_dir, made=NOW, data=os.urandom(100_000))

    def damage_when_sent(*, verb: str, name: str, total: int) -> remote.Progress:
        sent = 0

        def progress(moved: int) -> None:
            nonlocal sent
            sent += moved
            if sent == total:  # the store has every byte: now the file and the stored object differ
                data = bytearray(path.read_bytes())
                data[0] ^= 0xFF
                path.write_bytes(bytes(data))

        return progress

    with pytest.raises(BackupError, match=f"upload to {store.url}/{path.name} failed, {path} is kept: the store holds"):
        remote.remote_store(path=path, progress=damage_when_sent)

    assert store.object_keys() == []
    assert path.exists()
