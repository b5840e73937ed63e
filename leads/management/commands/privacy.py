"""Privacy requests from the command line: export or erase everything held about one person, and
re-apply past erasures after restoring a backup.

    manage.py privacy export --email X [--output FILE]
    manage.py privacy erase --email X [--yes]
    manage.py privacy reapply [--yes]

Erasure cannot be undone, so it asks first unless --yes. A malformed address is one line on
stderr and a non-zero exit. Each request is recorded (PrivacyRequest), by the address's hash.
"""

from __future__ import annotations

import getpass
import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from leads.services.privacy import privacy_erase, privacy_export, privacy_reapply, subject_key
from pipeline_whisperer.exceptions import DomainError


class Command(BaseCommand):
    help = "Export or erase a person's personal data (by email address), or re-apply erasures after a restore."

    def add_arguments(self, parser: ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{export,erase,reapply}")
        export = actions.add_parser("export", help="Print everything held about the person as JSON.")
        export.add_argument("--email", required=True, help="The person's email address (any case).")
        export.add_argument("--output", type=Path, help="Write the JSON to this file instead of stdout.")
        erase = actions.add_parser("erase", help="Erase the person's personal data and suppress the address.")
        erase.add_argument("--email", required=True, help="The person's email address (any case).")
        erase.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        reapply = actions.add_parser("reapply", help="Erase again everyone an erase audit row names (after a restore).")
        reapply.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            getattr(self, f"_{action}")(**options)
        except DomainError as error:
            raise CommandError(error.message) from None

    def _export(self, *, email: str, output: Path | None, **options: Any) -> None:
        text = json.dumps(privacy_export(email=email, requested_by=_operator()), indent=2, ensure_ascii=False)
        if output is None:
            self.stdout.write(text)
            return
        output.write_text(text + "\n", encoding="utf-8")
        output.chmod(0o600)  # personal data: readable by the operator only
        if options["verbosity"] >= 1:
            self.stdout.write(f"Wrote the export to {output}.")

    def _erase(self, *, email: str, yes: bool, **options: Any) -> None:
        key = subject_key(email)  # a malformed address fails before the question
        if not yes:
            self._confirm(f"Erase all personal data held about {key}? This cannot be undone.")
        report = privacy_erase(email=key, requested_by=_operator())
        if options["verbosity"] >= 1:
            changed = ", ".join(f"{name} {count}" for name, count in report.counts.items() if count) or "nothing held"
            self.stdout.write(
                self.style.SUCCESS(f"Erased ({changed}); the address stays suppressed. Audit #{report.request_id}.")
            )

    def _reapply(self, *, yes: bool, **options: Any) -> None:
        if not yes:
            self._confirm("Erase again every person an erase audit row names?")
        reports = privacy_reapply(requested_by=_operator())
        if options["verbosity"] >= 1:
            self.stdout.write(self.style.SUCCESS(f"Re-applied {len(reports)} erasure(s) to data held again."))

    def _confirm(self, question: str) -> None:
        try:
            answer = input(f"{question} Type 'yes' to go on: ")
        except EOFError:
            answer = ""
        if answer.strip().lower() != "yes":
            raise CommandError("Nothing was changed (not confirmed; pass --yes to skip the question).")


def _operator() -> str:
    try:
        return f"command:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (a container)
        return "command"
