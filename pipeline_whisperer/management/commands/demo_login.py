"""Print the embedded default's demo login (`make run` ends with it), making it on the first run.

manage.py demo_login
manage.py demo_login --base-url http://127.0.0.1:8000

Refused (exit 1, one line) unless debug is on and the database is SQLite: see
pipeline_whisperer.demo_login.
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from pipeline_whisperer.demo_login import demo_login_ensure
from pipeline_whisperer.exceptions import PermissionDenied


class Command(BaseCommand):
    help = "Make (first run) or reuse the demo staff user and API key of the embedded default, and print them."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000", help="Where the server answers (default %(default)s)."
        )

    def handle(self, *args: Any, base_url: str, **options: Any) -> None:
        try:
            login = demo_login_ensure()
        except PermissionDenied as error:
            raise CommandError(error.message) from None
        base = base_url.rstrip("/")
        self.stdout.write(
            "\n".join(
                [
                    self.style.SUCCESS(f"Demo login (kept in {login.path}):"),
                    f"  Admin      {base}/admin/   user {login.username}   password {login.password}",
                    f"  Console    {base}/admin/console/",
                    f"  API docs   {base}/api/docs/   (signed in to the admin)",
                    f"  API key    {login.api_key}   (header X-API-Key)",
                    f'  Try        curl -H "X-API-Key: {login.api_key}" {base}/api/v1/leads',
                ]
            )
        )
