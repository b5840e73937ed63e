"""Prove a backup restores: into a scratch database (PostgreSQL; dropped afterwards) or a scratch
file (SQLite), compared table by table with the manifest. Exit 1 with one line if not."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops.backups import backup_directory, backup_latest, backup_resolve
from ops.cli import NO_SYSTEM_CHECKS, operator_errors
from ops.restore import backup_verify, describe


class Command(BaseCommand):
    help = "Restore a backup into a scratch database and compare its row counts with the manifest."
    requires_system_checks = NO_SYSTEM_CHECKS

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", help="The backup file (a path, or a file name in BACKUP_DIR).")
        parser.add_argument("--latest", action="store_true", help="Verify the newest complete backup in BACKUP_DIR.")

    def handle(self, *args: Any, **options: Any) -> None:
        latest = backup_latest() if options["latest"] else None
        if options["latest"] == bool(options["file"]):
            raise CommandError("name one backup FILE or give --latest")
        if options["latest"] and latest is None:
            raise CommandError(f"no complete backup in {backup_directory()}")
        path = latest.path if latest else backup_resolve(options["file"])
        with operator_errors():
            report = backup_verify(path=path)
        if options["verbosity"] >= 1:
            self.stdout.write(f"verified {path.name}: {describe(report)}")
