"""Prove a backup restores: into a scratch database (PostgreSQL; dropped afterwards) or a scratch
file (SQLite), compared table by table with the manifest. Exit 1 with one line if not. A backup in
the off-site store (`s3://...`, or --remote --latest) is downloaded into BACKUP_DIR first."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops.backups import backup_directory, backup_latest
from ops.cli import NO_SYSTEM_CHECKS, backup_fetch, operator_errors
from ops.restore import backup_verify, describe


class Command(BaseCommand):
    help = "Restore a backup into a scratch database and compare its row counts with the manifest."
    requires_system_checks = NO_SYSTEM_CHECKS

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", help="The backup (a path, a file name in BACKUP_DIR, or an s3:// URL).")
        parser.add_argument("--latest", action="store_true", help="Verify the newest complete backup in BACKUP_DIR.")
        parser.add_argument("--remote", action="store_true", help="With --latest: the newest in BACKUP_REMOTE_URL.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["latest"] == bool(options["file"]):
            raise CommandError("name one backup FILE or give --latest")
        if options["remote"] and not options["latest"]:
            raise CommandError("--remote goes with --latest (or name the backup as s3://...)")
        with operator_errors():
            name = options["file"] or self._latest(remote=options["remote"])
            with backup_fetch(name) as path:
                report = backup_verify(path=path)
        if options["verbosity"] >= 1:
            self.stdout.write(f"verified {path.name}: {describe(report)}")

    def _latest(self, *, remote: bool) -> str:
        if remote:
            from ops.remote import remote_latest, remote_location  # boto3's import cost only when asked for

            latest_remote = remote_latest()
            if latest_remote is None:
                raise CommandError(f"no complete backup in {remote_location().url()}")
            return latest_remote.url
        latest = backup_latest()
        if latest is None:
            raise CommandError(f"no complete backup in {backup_directory()}")
        return str(latest.path)
