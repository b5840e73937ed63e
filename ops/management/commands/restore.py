"""Restore a backup made by `manage.py backup` into the configured database.

The file is checked first (manifest, engine, size, sha256, migrations no newer than the code);
a refusal leaves the database untouched. Then it asks, unless --yes / --noinput, and restores
all or nothing; afterwards it compares row counts with the manifest and says so. An
`s3://bucket/prefix/<name>` is downloaded (with its manifest) into BACKUP_DIR first and checked
the same way; the download is removed afterwards.
"""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops.cli import NO_SYSTEM_CHECKS, backup_fetch, operator_errors
from ops.restore import backup_restore, describe


class Command(BaseCommand):
    help = (
        "Replace the configured database's contents with a backup (a path, a file name in BACKUP_DIR, "
        "or s3://bucket/prefix/<name> in the off-site store)."
    )
    requires_system_checks = NO_SYSTEM_CHECKS

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The backup file or s3:// URL; its .json manifest must be beside it.")
        parser.add_argument(
            "--yes", "--noinput", "--no-input", action="store_false", dest="interactive", help="Do not ask."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["file"]
        confirm = self._confirm if options["interactive"] else None
        with operator_errors(), backup_fetch(name) as path:
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
