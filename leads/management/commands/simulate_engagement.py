"""Answer sent outreach as simulated leads would, at a true conversion rate per variant.

    simulate_engagement                                   # one round over what is waiting
    simulate_engagement --follow                          # keep answering until stopped
    simulate_engagement --rates "Short question=0.12,Social proof=0.03"

By default the demo's variants get distinct true rates from 2% to 12%, so the bandit has a
winner to find. Events go through the same path as POST /api/v1/engagements.
"""

from __future__ import annotations

import random
import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from leads.services.simulation import EngagementRates, default_conversion_rates, simulate_engagement_round


class Command(BaseCommand):
    help = "Simulate opens, clicks, replies, conversions, bounces and unsubscribes for sent outreach."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--rates", default="", help="Conversion rate per variant name: 'Name=0.1,Other=0.02'.")
        parser.add_argument("--follow", action="store_true", help="Keep answering new outreach every --interval s.")
        parser.add_argument("--interval", type=float, default=2.0)
        parser.add_argument("--seed", type=int, default=None, help="Seed the simulated answers.")

    def handle(self, *args: Any, **options: Any) -> None:
        rates = EngagementRates(conversion=self._rates(options["rates"]) or default_conversion_rates())
        rng = random.Random(options["seed"])  # noqa: S311  (simulation)
        while True:
            answered = simulate_engagement_round(rates=rates, rng=rng)
            if options["verbosity"] >= 2 or (answered and options["verbosity"] >= 1 and not options["follow"]):
                self.stdout.write(f"answered {answered} outreach")
            if not options["follow"]:
                return
            time.sleep(options["interval"])

    def _rates(self, text: str) -> dict[str, float]:
        rates = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.rpartition("=")
            try:
                rate = float(value)
            except ValueError:
                raise CommandError(f"--rates: {part!r} is not NAME=RATE") from None
            if not name or not 0 <= rate <= 1:
                raise CommandError(f"--rates: {part!r} needs a name and a rate from 0 to 1")
            rates[name] = rate
        return rates
