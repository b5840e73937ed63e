"""Prove a backup restores: into a scratch database (PostgreSQL; dropped afterwards) or a scratch
file (SQLite), compared table by table with the manifest. Exit 1 with one line if not."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ops.backups import backup_resolve
from ops.cli import operator_errors
from ops.restore import backup_verify, describe


class Command(BaseCommand):
    help = "Restore a backup into a scratch database and compare its row counts with the manifest."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The backup file (a path, or a file name in BACKUP_DIR).")

    def handle(self, *args: Any, **options: Any) -> None:
        path = backup_resolve(options["file"])
        with operator_errors():
            report = backup_verify(path=path)
        if options["verbosity"] >= 1:
            self.stdout.write(f"verified {path.name}: {describe(report)}")
