"""Lift a login lockout, so a user locked out by wrong passwords can log in again at once.

manage.py unlock_login --username alice                  # from every address she is locked out from
manage.py unlock_login --username alice --ip 203.0.113.7 # from that address only

Axes' own `axes_reset_ip_username IP USER` does the same for one address; this command also
finds the addresses, and says clearly when there is nothing to lift.
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from pipeline_whisperer.exceptions import DomainError
from pipeline_whisperer.lockouts import login_lockout_lift


class Command(BaseCommand):
    help = "Lift the login lockout of a username, from one address (--ip) or from all."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--username", required=True, help="The username that is locked out.")
        parser.add_argument("--ip", help="The client address it is locked out from (default: every address).")

    def handle(self, *args: Any, username: str, ip: str | None, verbosity: int, **options: Any) -> None:
        try:
            lifted = login_lockout_lift(username=username, ip_address=ip)
        except DomainError as error:
            raise CommandError(error.message) from None
        if verbosity >= 1:
            for lockout in lifted:
                self.stdout.write(
                    self.style.SUCCESS(f"Lifted the lockout of {lockout.username!r} from {lockout.ip_address}.")
                )
