"""Emit realistic Lightfield lead.created events (Faker) for demos and benchmarks.

simulate_leads --count 1000                      # straight into this service (ingest service)
simulate_leads --count 1000 --rate 20 --to api --url http://127.0.0.1:8000 --api-key KEY
simulate_leads --count 20000 --to kafka          # produce to leads.raw, as an external CRM would
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.request
from argparse import ArgumentParser
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from leads.pipeline.events import encode
from leads.services.ingest import lead_ingest_batch
from leads.services.simulation import simulated_events
from leads.topics import LEADS_RAW

# Delivers one batch of simulated Lightfield events to the chosen destination.
Sender = Callable[[list[dict[str, Any]]], object]


class Command(BaseCommand):
    help = "Send simulated Lightfield lead.created events to this service, its API, or Kafka."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--count", type=int, required=True, help="How many events.")
        parser.add_argument("--rate", type=float, default=0.0, help="Events per second (0: as fast as possible).")
        parser.add_argument("--to", choices=["local", "api", "kafka"], default="local")
        parser.add_argument("--batch", type=int, default=100, help="Events per API request or ingest call.")
        parser.add_argument("--seed", type=int, default=int(time.time()), help="Same seed, same events.")
        parser.add_argument("--prefix", default="", help="lightfield_id prefix (default: sim-<seed>).")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Service URL for --to api.")
        parser.add_argument("--api-key", default="", help="A write API key for --to api.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["count"] < 1 or options["batch"] < 1:
            raise CommandError("--count and --batch must be at least 1")
        send = {"local": self._local, "api": self._api, "kafka": self._kafka}[options["to"]](options)
        prefix = options["prefix"] or f"sim-{options['seed']}"
        events = simulated_events(count=options["count"], seed=options["seed"], prefix=prefix)
        batch_size = 1 if options["rate"] and options["rate"] < options["batch"] else options["batch"]
        started, sent = time.monotonic(), 0
        while batch := list(itertools.islice(events, batch_size)):
            send(batch)
            sent += len(batch)
            if options["rate"]:
                time.sleep(max(0.0, started + sent / options["rate"] - time.monotonic()))
        if options["verbosity"] >= 1:
            self.stdout.write(f"sent {sent} events in {time.monotonic() - started:.1f}s to {options['to']}")

    def _local(self, options: dict[str, Any]) -> Sender:
        return lambda batch: lead_ingest_batch(events=batch)

    def _api(self, options: dict[str, Any]) -> Sender:
        if not options["api_key"]:
            raise CommandError("--to api needs --api-key (make one with: manage.py apikey create NAME --scope write)")
        if not options["url"].startswith(("http://", "https://")):
            raise CommandError(f"--url must be an http:// or https:// address (got {options['url']!r})")
        url = options["url"].rstrip("/") + "/api/v1/leads/ingest"

        def post(batch: list[dict[str, Any]]) -> None:
            request = urllib.request.Request(  # noqa: S310  (the operator names the URL)
                url,
                data=json.dumps(batch).encode(),
                method="POST",
                headers={"Content-Type": "application/json", "X-API-Key": options["api_key"]},
            )
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # nosec B310  # http(s) URL checked above
                if response.status != 202:
                    raise CommandError(f"{url} answered {response.status}")

        return post

    def _kafka(self, options: dict[str, Any]) -> Sender:
        if not settings.KAFKA_BOOTSTRAP_SERVERS:
            raise CommandError("--to kafka needs KAFKA_BOOTSTRAP_SERVERS")
        from leads.pipeline.kafka import ALL_TOPICS
        from pipeline_whisperer.kafka import ensure_topics, make_producer

        ensure_topics(ALL_TOPICS)
        producer = make_producer()

        def produce(batch: list[dict[str, Any]]) -> None:
            for event in batch:
                producer.produce(LEADS_RAW, key=event["lightfield_id"].encode(), value=encode(event))
                producer.poll(0)
            if producer.flush(30):
                raise CommandError("the broker did not take every event within 30s")

        return produce
