"""Manage API keys from the shell: create (the key is printed once), list, revoke.

manage.py apikey create "CRM sync" --scope write
manage.py apikey list
manage.py apikey revoke AbCd1234
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from pipeline_whisperer.auth import api_keys_changed
from pipeline_whisperer.models import ApiKey


class Command(BaseCommand):
    help = "Create, list or revoke API keys for the REST API (X-API-Key header)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a key and print it once.")
        create.add_argument("name", help="Who or what uses the key, e.g. 'CRM sync'.")
        create.add_argument(
            "--scope",
            choices=ApiKey.Scope.values,
            default=ApiKey.Scope.READ,
            help="read: safe methods only; write: everything (default: read).",
        )
        actions.add_parser("list", help="List keys (prefix, name, scope, last use); never the keys themselves.")
        revoke = actions.add_parser("revoke", help="Revoke a key by its prefix; it stops working at once.")
        revoke.add_argument("prefix", help="The part of the key before the dot.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, f"_{action}")(**options)

    def _create(self, *, name: str, scope: str, verbosity: int, **_: Any) -> None:
        if not name.strip() or len(name) > 50:
            raise CommandError("the key's name must be 1 to 50 characters")
        api_key, key = ApiKey.objects.create_key(name=name, scope=scope)
        if verbosity >= 1:
            self.stderr.write(
                f"Created {scope} key {api_key.prefix} for {name!r}. Store it now; it is not shown again:"
            )
        self.stdout.write(key)

    def _list(self, **_: Any) -> None:
        for api_key in ApiKey.objects.order_by("created"):
            state = "revoked" if api_key.revoked else ("expired" if api_key.has_expired else "active")
            last_used = api_key.last_used_at.isoformat() if api_key.last_used_at else "never"
            self.stdout.write(f"{api_key.prefix}\t{api_key.scope}\t{state}\tlast used {last_used}\t{api_key.name}")

    def _revoke(self, *, prefix: str, verbosity: int, **_: Any) -> None:
        updated = ApiKey.objects.filter(prefix=prefix, revoked=False).update(revoked=True)
        api_keys_changed()  # update() sends no post_save: workers must forget the key all the same
        if not updated:
            raise CommandError(f"no active API key has the prefix {prefix!r}")
        if verbosity >= 1:
            self.stdout.write(self.style.SUCCESS(f"Revoked key {prefix}."))
