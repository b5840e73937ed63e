"""List the backups in BACKUP_DIR, newest first (only files `manage.py backup` made)."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ops.backups import backup_list
from ops.cli import NO_SYSTEM_CHECKS


class Command(BaseCommand):
    help = "List backups in BACKUP_DIR, newest first: time, size, engine, whether complete and restore-verified."
    requires_system_checks = NO_SYSTEM_CHECKS

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="One JSON array for machines.")

    def handle(self, *args: Any, **options: Any) -> None:
        backups = backup_list()
        if options["json"]:
            rows = [
                {
                    "path": str(backup.path),
                    "created_at": backup.created_at.isoformat(),
                    "size_bytes": backup.size_bytes,
                    "engine": backup.engine,
                    "verified": backup.verified,
                    "restore_verified_at": backup.restore_verified_at and backup.restore_verified_at.isoformat(),
                }
                for backup in backups
            ]
            self.stdout.write(json.dumps(rows))
            return
        for backup in backups:
            state = "complete" if backup.verified else "INCOMPLETE (no manifest)"
            if backup.restore_verified_at:
                state += f", restore verified {backup.restore_verified_at:%Y-%m-%d %H:%M}"
            self.stdout.write(
                f"{backup.path.name}  {backup.created_at:%Y-%m-%d %H:%M:%S}Z  {backup.size_bytes:>12} B  "
                f"{backup.engine}  {state}"
            )
