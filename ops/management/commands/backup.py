"""Back up the configured database (PostgreSQL or SQLite) into BACKUP_DIR, then apply retention.

Made for cron: silent on success unless --verbose, --json for machines; exit 0 only when the
backup and its manifest are on disk and the backup was read back; any failure leaves no file
of this run behind and exits 1 with one line on stderr. A second run while one holds the lock
exits 1 at once. With BACKUP_REMOTE_URL it then uploads the backup off-site (ops/remote.py) and
applies retention there; an upload that fails keeps the local backup and exits 1 with one line.
"""

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from ops.backups import backup_create
from ops.cli import NO_SYSTEM_CHECKS, operator_errors, terminal_progress


class Command(BaseCommand):
    help = (
        "Back up the database to BACKUP_DIR (a timestamped file and its .json manifest), then remove backups "
        "past BACKUP_RETENTION_DAYS / BACKUP_RETENTION_COUNT; with BACKUP_REMOTE_URL, upload it off-site too. "
        "Silent on success unless --verbose (progress on a terminal)."
    )
    requires_system_checks = NO_SYSTEM_CHECKS

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--verbose", action="store_true", help="Say what was written and removed.")
        parser.add_argument("--json", action="store_true", help="Print the manifest (and what was pruned) as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        with operator_errors():
            created = backup_create()
            stored = None
            if settings.BACKUP_REMOTE_URL:
                from ops.remote import remote_store  # boto3 costs 0.2 s of CPU to import: only when used

                stored = remote_store(path=created.info.path, progress=terminal_progress)
        if options["json"]:
            document = {**created.manifest, "path": str(created.info.path), "pruned": [p.name for p in created.pruned]}
            if stored:
                document |= {"remote_url": stored.url, "remote_pruned": stored.pruned}
            self.stdout.write(json.dumps(document, sort_keys=True))
        elif options["verbose"] or options["verbosity"] >= 2:
            manifest = created.manifest
            line = (
                f"backup {created.info.path} ({manifest['size_bytes']} bytes, {sum(manifest['row_counts'].values())} "
                f"rows, sha256 {manifest['sha256'][:12]}); removed {len(created.pruned)} old backup(s)"
            )
            if stored:
                line += f"; uploaded to {stored.url}, removed {len(stored.pruned)} old remote backup(s)"
            self.stdout.write(line)
