"""Restore a backup made by `manage.py backup` into the configured database.

The file is checked first (manifest, engine, size, sha256, migrations no newer than the code);
a refusal leaves the database untouched. Then it asks, unless --yes / --noinput, and restores
all or nothing; afterwards it compares row counts with the manifest and says so.
"""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops.backups import backup_resolve
from ops.cli import NO_SYSTEM_CHECKS, operator_errors
from ops.restore import backup_restore, describe


class Command(BaseCommand):
    help = "Replace the configured database's contents with a backup (a path, or a file name in BACKUP_DIR)."
    requires_system_checks = NO_SYSTEM_CHECKS

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The backup file; its .json manifest must be beside it.")
        parser.add_argument(
            "--yes", "--noinput", "--no-input", action="store_false", dest="interactive", help="Do not ask."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = backup_resolve(options["file"])
        confirm = self._confirm if options["interactive"] else None
        with operator_errors():
            report = backup_restore(path=path, confirm=confirm)
        if not report.matches:
            raise CommandError(f"restored {path.name}, but row counts differ from the manifest: {describe(report)}")
        if options["verbosity"] >= 1:
            self.stdout.write(f"restored {path.name}: {describe(report)}")

    def _confirm(self, manifest: dict[str, Any]) -> bool:
        database = settings.DATABASES["default"]["NAME"]
        question = (
            f"Replace every table of {database} with {Path(manifest['file']).name} "
            f"(made {manifest['finished_at']}, {sum(manifest['row_counts'].values())} rows)? Type 'yes': "
        )
        try:
            return input(question).strip().lower() == "yes"
        except EOFError:
            return False
