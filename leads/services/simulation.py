"""Simulated traffic for demos and benchmarks: Lightfield leads arriving, and leads answering
outreach at a true conversion rate per variant, so the bandit has something to learn."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from faker import Faker

from leads.lightfield import fake_event
from leads.models import Outreach, Variant
from leads.services.feedback import engagement_submit


def simulated_events(*, count: int, seed: int, prefix: str) -> Iterator[dict]:
    """`count` realistic lead.created events with ids `<prefix>-<n>`; the same seed, the same events."""
    fake, rng = Faker(), random.Random(seed)
    fake.seed_instance(seed)
    for number in range(count):
        yield fake_event(fake, rng, f"{prefix}-{number:07d}")


@dataclass(frozen=True)
class EngagementRates:
    """How leads answer: conversion per variant (by name), the rest shared."""

    conversion: dict[str, float]
    default_conversion: float = 0.05
    open: float = 0.45
    click: float = 0.15
    reply: float = 0.08
    bounce: float = 0.02
    unsubscribe: float = 0.01

    def for_variant(self, name: str) -> float:
        return self.conversion.get(name, self.default_conversion)


def simulate_engagement_round(*, rates: EngagementRates, rng: random.Random, limit: int = 500) -> int:
    """Answer up to `limit` sent outreach that nobody answered yet; returns how many.

    Each gets a delivery receipt (so it is not answered twice) and, by the rates, a bounce, an
    unsubscribe, or opens, clicks, replies and a conversion. Event ids are derived from the
    outreach id, so running this twice on the same outreach changes nothing.
    """
    pending = list(
        Outreach.objects.filter(status=Outreach.Status.SENT)
        .select_related("variant")
        .only("pk", "variant__name")
        .order_by("pk")[:limit]
    )
    events = []
    for outreach in pending:
        for event_type in _answers(outreach, rates, rng):
            events.append(
                {"event_id": f"sim-{outreach.pk}-{event_type}", "event_type": event_type, "outreach_id": outreach.pk}
            )
    if events:
        engagement_submit(events=events)
    return len(pending)


def _answers(outreach: Outreach, rates: EngagementRates, rng: random.Random) -> list[str]:
    answers = ["delivered"]
    if rng.random() < rates.bounce:
        return ["bounced"]
    if rng.random() < rates.unsubscribe:
        return [*answers, "unsubscribed"]
    converts = rng.random() < rates.for_variant(outreach.variant.name if outreach.variant else "")
    for event_type, rate in (("opened", rates.open), ("clicked", rates.click), ("replied", rates.reply)):
        if converts or rng.random() < rate:
            answers.append(event_type)
    return [*answers, "converted"] if converts else answers


def default_conversion_rates() -> dict[str, float]:
    """Distinct true rates for the demo's variants (2% to 12%), so one clearly wins."""
    names = sorted(set(Variant.objects.values_list("name", flat=True)))
    return {name: round(0.02 + 0.10 * index / max(len(names) - 1, 1), 4) for index, name in enumerate(names)}
