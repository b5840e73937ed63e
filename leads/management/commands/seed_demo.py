"""Load demo data: templates, experiments with their variants, and scored leads.

Safe to run again: what exists already is left alone. `make run` calls it.
"""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from leads.services.demo import demo_seed


class Command(BaseCommand):
    help = "Create demo templates, experiments and leads (idempotent)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--leads", type=int, default=200, help="How many demo leads to have (default 200).")

    def handle(self, *args: Any, leads: int, **options: Any) -> None:
        result = demo_seed(lead_count=max(leads, 0))
        if options["verbosity"] >= 1:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo data ready: {result.templates_created} template(s), {result.experiments_created} "
                    f"experiment(s) and {result.leads_created} lead(s) added."
                )
            )
