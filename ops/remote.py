"""Off-site copies of backups in S3-compatible storage (AWS S3, MinIO, Cloudflare R2, Backblaze B2).

BACKUP_REMOTE_URL `s3://bucket/prefix` holds the same pairs as BACKUP_DIR: `prefix/<backup name>`
and `prefix/<backup name>.json`, the manifest uploaded last, so a backup without one is incomplete
there too. Uploads use boto3's managed transfer (multipart above PART_SIZE) with SHA-256 checksums
that the store checks part by part; afterwards the checksum the store reports for the whole object
must equal the one computed here from the local file. Downloads land in a temp directory inside
BACKUP_DIR and go through the same checks as a local file (size, sha256, manifest) before any
restore. Credentials come only from boto3's chain (environment, profile, instance role).
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from s3transfer.utils import ChunksizeAdjuster

from ops.backups import (
    backup_directory,
    backup_lock,
    backup_name_parse,
    manifest_path,
    retention_expired,
)
from pipeline_whisperer.exceptions import BackupError, BackupInterrupted

PART_SIZE = 16 * 1024 * 1024  # multipart threshold and part size: 625 parts for a 10 GB backup
SSE_CHOICES = ("AES256", "aws:kms", "aws:kms:dsse")
_URL = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")
# What the store, the network and boto3 raise; each becomes one BackupError line.
REMOTE_FAILURES = (BotoCoreError, ClientError, Boto3Error, OSError)
Progress = Callable[[int], None]  # called with the bytes moved since the last call
# Given verb, name and total bytes, a Progress or None (ops.cli.terminal_progress: a terminal only).
ProgressFactory = Callable[..., Progress | None]


@dataclass(frozen=True)
class RemoteLocation:
    """A bucket and a key prefix ("" or ending in "/") where backups are kept."""

    bucket: str
    prefix: str

    def key(self, name: str) -> str:
        return self.prefix + name

    def url(self, name: str = "") -> str:
        return f"s3://{self.bucket}/{self.key(name)}"


@dataclass(frozen=True)
class RemoteBackup:
    """One backup in the store; `complete` means its manifest is there too."""

    url: str
    name: str
    created_at: datetime
    size_bytes: int
    engine: str
    complete: bool


@dataclass(frozen=True)
class RemoteStored:
    url: str
    pruned: list[str]  # URLs of the remote backups retention removed


def remote_location(url: str | None = None) -> RemoteLocation:
    """`s3://bucket/prefix` (BACKUP_REMOTE_URL by default) parsed; BackupError if it is not one."""
    url = settings.BACKUP_REMOTE_URL if url is None else url
    if not url:
        raise BackupError("BACKUP_REMOTE_URL is not set: there is no off-site store to use")
    match = _URL.match(url)
    if match is None:
        raise BackupError(f"BACKUP_REMOTE_URL {url!r} is not s3://bucket/prefix")
    prefix = (match.group("prefix") or "").strip("/")
    return RemoteLocation(bucket=match.group("bucket"), prefix=f"{prefix}/" if prefix else "")


def remote_object(url: str) -> tuple[RemoteLocation, str]:
    """`s3://bucket/prefix/<backup name>` split into its location and the backup's name."""
    location_url, _, name = url.rpartition("/")
    if backup_name_parse(name) is None or not location_url.startswith("s3://"):
        raise BackupError(f"{url} is not s3://bucket/prefix/pw-backup-<time>.<pgdump|sqlite3.gz>")
    return remote_location(location_url), name


def remote_store(
    *, path: Path, location: RemoteLocation | None = None, progress: ProgressFactory | None = None
) -> RemoteStored:
    """Upload the backup at `path` and its manifest, check the stored checksum, apply retention.

    Holds the backup lock, so no local prune removes the file meanwhile. On failure raises
    BackupError and removes what it uploaded of this backup; the local files stay.
    """
    location = location or remote_location()
    client = remote_client()
    with backup_lock(directory=path.parent):
        try:
            _upload(client, path=path, location=location, progress=progress)
        except BackupInterrupted as error:
            raise BackupInterrupted(
                f"interrupted by SIGTERM during the upload to {location.url(path.name)}; {path} is kept"
            ) from error
        except (*REMOTE_FAILURES, BackupError) as error:
            raise BackupError(f"upload to {location.url(path.name)} failed, {path} is kept: {_line(error)}") from error
        try:
            pruned = remote_prune(location=location, client=client)
        except BackupInterrupted as error:
            raise BackupInterrupted(
                f"interrupted by SIGTERM during retention in {location.url()}; the upload is complete"
            ) from error
        except (*REMOTE_FAILURES, BackupError) as error:
            raise BackupError(
                f"retention in {location.url()} failed (the upload is complete): {_line(error)}"
            ) from error
    return RemoteStored(url=location.url(path.name), pruned=pruned)


def remote_list(*, location: RemoteLocation | None = None, client: Any = None) -> list[RemoteBackup]:
    """Our backups under the location's prefix, newest first; other keys are ignored."""
    location = location or remote_location()
    client = client or remote_client()
    sizes: dict[str, int] = {}
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=location.bucket, Prefix=location.prefix, Delimiter="/"
        )
        for page in pages:
            for entry in page.get("Contents", []):
                sizes[entry["Key"].removeprefix(location.prefix)] = entry["Size"]
    except REMOTE_FAILURES as error:
        raise BackupError(f"cannot list {location.url()}: {_line(error)}") from error
    backups = []
    for name, size in sizes.items():
        parsed = backup_name_parse(name)
        if parsed is not None:
            created_at, engine = parsed
            complete = manifest_path(Path(name)).name in sizes
            backups.append(RemoteBackup(location.url(name), name, created_at, size, engine, complete))
    return sorted(backups, key=lambda backup: backup.created_at, reverse=True)


def remote_latest(*, location: RemoteLocation | None = None) -> RemoteBackup | None:
    """The newest complete backup in the store, or None."""
    return next((backup for backup in remote_list(location=location) if backup.complete), None)


def remote_prune(
    *, location: RemoteLocation | None = None, client: Any = None, now: datetime | None = None
) -> list[str]:
    """Remove the remote backups (and manifests) that local retention's rule names, counted with
    BACKUP_REMOTE_RETENTION_DAYS / _COUNT. Never the newest. Returns the removed backups' URLs."""
    location = location or remote_location()
    client = client or remote_client()
    expired = retention_expired(
        remote_list(location=location, client=client),
        retention_days=settings.BACKUP_REMOTE_RETENTION_DAYS,
        retention_count=settings.BACKUP_REMOTE_RETENTION_COUNT,
        now=now,
    )
    for backup in expired:
        keys = [location.key(manifest_path(Path(backup.name)).name), location.key(backup.name)]
        answer = client.delete_objects(
            Bucket=location.bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True}
        )
        if answer.get("Errors"):  # a refused key is reported in the answer, not raised
            error = answer["Errors"][0]
            raise BackupError(f"cannot remove {location.url(error['Key'])}: {error.get('Code')} {error.get('Message')}")
    return [backup.url for backup in expired]


@contextmanager
def remote_download(*, url: str, progress: ProgressFactory | None = None) -> Iterator[Path]:
    """Download `s3://.../<backup name>` and its manifest into a temp directory in BACKUP_DIR and
    yield the local path; the directory is removed afterwards. Nothing is checked here: callers
    pass the path to `backup_restore` / `backup_verify`, which check it before any database work."""
    location, name = remote_object(url)
    client = remote_client()
    directory = backup_directory()
    directory.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".pw-download-", dir=directory))
    try:
        path = scratch / name
        try:
            client.download_file(location.bucket, location.key(manifest_path(path).name), str(manifest_path(path)))
            size = client.head_object(Bucket=location.bucket, Key=location.key(name))["ContentLength"]
            callback = progress(verb="download", name=name, total=size) if progress else None
            client.download_file(
                location.bucket, location.key(name), str(path), Callback=callback, Config=_transfer_config()
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NoSuchBucket"):
                raise BackupError(f"{url} or its manifest is not in the store") from error
            raise BackupError(f"download of {url} failed: {_line(error)}") from error
        except REMOTE_FAILURES as error:
            raise BackupError(f"download of {url} failed: {_line(error)}") from error
        yield path
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def remote_client() -> Any:
    """An S3 client for BACKUP_REMOTE_ENDPOINT_URL / _REGION; credentials from boto3's chain."""
    config = Config(
        connect_timeout=10,
        read_timeout=60,
        retries={"mode": "standard", "max_attempts": 3},
        s3={"addressing_style": "auto"},
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.BACKUP_REMOTE_ENDPOINT_URL or None,
        region_name=settings.BACKUP_REMOTE_REGION or None,
        config=config,
    )


def sha256_checksum(*, path: Path, part_size: int | None) -> str:
    """The ChecksumSHA256 S3 reports for `path` uploaded whole (`part_size` None) or in parts:
    base64 of the file's sha256, or of the sha256 of its parts' sha256 digests (a composite)."""
    whole, parts = hashlib.sha256(), []
    with path.open("rb") as stream:
        while chunk := stream.read(part_size or 1 << 20):
            whole.update(chunk)
            parts.append(hashlib.sha256(chunk).digest())
    digest = hashlib.sha256(b"".join(parts)).digest() if part_size else whole.digest()
    return base64.b64encode(digest).decode()


def _upload(client: Any, *, path: Path, location: RemoteLocation, progress: ProgressFactory | None) -> None:
    extra = {"ChecksumAlgorithm": "SHA256", **_encryption()}
    config = _transfer_config()
    key = location.key(path.name)
    callback = progress(verb="upload", name=path.name, total=path.stat().st_size) if progress else None
    try:
        client.upload_file(str(path), location.bucket, key, ExtraArgs=extra, Config=config, Callback=callback)
        stored = client.head_object(Bucket=location.bucket, Key=key, ChecksumMode="ENABLED")
        size = path.stat().st_size
        # The part size s3transfer used: it grows the configured one for files of over 10,000 parts.
        part_size = ChunksizeAdjuster().adjust_chunksize(PART_SIZE, size) if size >= PART_SIZE else None
        expected = sha256_checksum(path=path, part_size=part_size)
        # Real S3 marks a composite checksum with "-<parts>"; some compatible stores do not.
        found = (stored.get("ChecksumSHA256") or "").split("-")[0]
        if stored["ContentLength"] != size or found != expected:
            raise BackupError(
                f"the store holds {location.url(path.name)} with {stored['ContentLength']} bytes and SHA-256 "
                f"{found or 'none'}, not {size} bytes and {expected}"
            )
        manifest = manifest_path(path)
        client.upload_file(str(manifest), location.bucket, location.key(manifest.name), ExtraArgs=extra)
    except BaseException:
        _delete_quietly(client, location=location, names=[manifest_path(path).name, path.name])
        raise


def _encryption() -> dict[str, str]:
    sse = settings.BACKUP_REMOTE_SSE
    if not sse:
        return {}
    if sse not in SSE_CHOICES:
        raise BackupError(f"BACKUP_REMOTE_SSE {sse!r} is not one of {', '.join(SSE_CHOICES)}")
    extra = {"ServerSideEncryption": sse}
    if sse.startswith("aws:kms") and settings.BACKUP_REMOTE_SSE_KMS_KEY_ID:
        extra["SSEKMSKeyId"] = settings.BACKUP_REMOTE_SSE_KMS_KEY_ID
    return extra


def _transfer_config() -> TransferConfig:
    return TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE)


def _delete_quietly(client: Any, *, location: RemoteLocation, names: list[str]) -> None:
    """Remove a failed upload's objects if the store answers; the error that caused it is the news."""
    try:
        objects = [{"Key": location.key(name)} for name in names]
        client.delete_objects(Bucket=location.bucket, Delete={"Objects": objects, "Quiet": True})
    except REMOTE_FAILURES:
        pass


def _line(error: BaseException) -> str:
    return " ".join(str(error).split())
