"""Back up the configured database (PostgreSQL or SQLite) into BACKUP_DIR, then apply retention.

Made for cron: silent on success unless --verbose, --json for machines; exit 0 only when the
backup and its manifest are on disk and the backup was read back; any failure leaves no file
of this run behind and exits 1 with one line on stderr. A second run while one holds the lock
exits 1 at once.
"""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ops.backups import backup_create
from ops.cli import NO_SYSTEM_CHECKS, operator_errors


class Command(BaseCommand):
    help = (
        "Back up the database to BACKUP_DIR (a timestamped file and its .json manifest), then remove backups "
        "past BACKUP_RETENTION_DAYS / BACKUP_RETENTION_COUNT. Silent on success unless --verbose."
    )
    requires_system_checks = NO_SYSTEM_CHECKS

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--verbose", action="store_true", help="Say what was written and removed.")
        parser.add_argument("--json", action="store_true", help="Print the manifest (and what was pruned) as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        with operator_errors():
            created = backup_create()
        if options["json"]:
            document = {**created.manifest, "path": str(created.info.path), "pruned": [p.name for p in created.pruned]}
            self.stdout.write(json.dumps(document, sort_keys=True))
        elif options["verbose"] or options["verbosity"] >= 2:
            manifest = created.manifest
            self.stdout.write(
                f"backup {created.info.path} ({manifest['size_bytes']} bytes, {sum(manifest['row_counts'].values())} "
                f"rows, sha256 {manifest['sha256'][:12]}); removed {len(created.pruned)} old backup(s)"
            )
