"""List the backups in BACKUP_DIR (or, with --remote, in BACKUP_REMOTE_URL), newest first; only
files `manage.py backup` made."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ops.backups import backup_list
from ops.cli import NO_SYSTEM_CHECKS, operator_errors


class Command(BaseCommand):
    help = (
        "List backups in BACKUP_DIR, newest first: time, size, engine, whether complete and restore-verified; "
        "--remote lists BACKUP_REMOTE_URL instead."
    )
    requires_system_checks = NO_SYSTEM_CHECKS

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="One JSON array for machines.")
        parser.add_argument("--remote", action="store_true", help="List the off-site store (BACKUP_REMOTE_URL).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["remote"]:
            self._remote(as_json=options["json"])
            return
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

    def _remote(self, *, as_json: bool) -> None:
        from ops.remote import remote_list  # boto3 costs 0.2 s of CPU to import: only when asked for

        with operator_errors():
            backups = remote_list()
        if as_json:
            rows = [
                {
                    "url": backup.url,
                    "created_at": backup.created_at.isoformat(),
                    "size_bytes": backup.size_bytes,
                    "engine": backup.engine,
                    "complete": backup.complete,
                }
                for backup in backups
            ]
            self.stdout.write(json.dumps(rows))
            return
        for backup in backups:
            state = "complete" if backup.complete else "INCOMPLETE (no manifest)"
            self.stdout.write(
                f"{backup.url}  {backup.created_at:%Y-%m-%d %H:%M:%S}Z  {backup.size_bytes:>12} B  "
                f"{backup.engine}  {state}"
            )
