"""The pipeline's stages: what each does with one event. The loop around them (batching,
retries, dead letters, offsets) is in `leads.consumer` for Kafka and `leads.inprocess` for the
embedded default, so both shapes run exactly this code.
"""

from __future__ import annotations

import logging
import random
import time
from typing import ClassVar

from django.conf import settings

from leads.events import LEADS_RAW, LEADS_SCORED, OUTREACH_EVENTS, Event
from leads.lightfield import InvalidEvent, parse_event
from leads.scoring.factory import configured_scorer
from leads.services.feedback import engagement_apply
from leads.services.ingest import facts_from_fields, lead_upsert_scored
from leads.services.outbox import AlreadyApplied, dead_letter_record, event_was_applied, exactly_once
from leads.services.outreach import outreach_attempt
from pipeline_whisperer.correlation import correlation_scope

logger = logging.getLogger(__name__)


class PoisonEvent(ValueError):
    """The event can never be applied (not JSON, breaks the contract): dead-letter it at once."""


class Stage:
    """One stage: `handle` applies an event; `process` adds idempotency, retries and dead letters."""

    name: ClassVar[str]
    topic: ClassVar[str]

    def handle(self, event: Event) -> None:
        raise NotImplementedError

    def process(self, event: Event) -> str:
        """Apply `event` once: "applied", "skipped" (seen before) or "dead" (dead-lettered).

        Raises only if the database itself fails, so the caller must not move past the event.
        Every line logged meanwhile carries the event's correlation id.
        """
        with correlation_scope(event.correlation_id):
            outcome = self._attempt(event)
            logger.info(
                "%s %s %s %s",
                self.name,
                outcome,
                event.event_type or "event",
                event.event_id,
                extra={"stage": self.name, "outcome": outcome, "event_id": event.event_id},
            )
            return outcome

    def _attempt(self, event: Event) -> str:
        if event_was_applied(stage=self.name, event_id=event.event_id):
            return "skipped"
        for attempt in range(1, settings.PIPELINE_MAX_ATTEMPTS + 1):
            try:
                self.handle(event)
                return "applied"
            except AlreadyApplied:
                return "skipped"
            except (PoisonEvent, InvalidEvent) as error:
                return self._dead(event, f"{type(error).__name__}: {error}", attempt)
            except Exception as error:
                logger.warning("%s failed on %s (attempt %s): %s", self.name, event.event_id, attempt, error)
                if attempt == settings.PIPELINE_MAX_ATTEMPTS:
                    return self._dead(event, f"{type(error).__name__}: {error}", attempt)
                time.sleep(settings.PIPELINE_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _dead(self, event: Event, error: str, attempts: int) -> str:
        logger.error("%s dead-lettered %s after %s attempt(s): %s", self.name, event.event_id, attempts, error)
        dead_letter_record(stage=self.name, event=event, error=error, attempts=attempts)
        return "dead"


def _json(event: Event) -> dict:
    try:
        payload = event.payload()
    except ValueError as error:
        raise PoisonEvent(f"not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise PoisonEvent("the event must be a JSON object")
    return payload


class ScorerStage(Stage):
    name, topic = "scorer", LEADS_RAW

    def handle(self, event: Event) -> None:
        fields = parse_event(_json(event))
        result = configured_scorer()(facts_from_fields(fields))  # may call a model: outside the transaction
        with exactly_once(stage=self.name, event_id=event.event_id):
            lead_upsert_scored(fields=fields, result=result)


class OutreachStage(Stage):
    name, topic = "outreach", LEADS_SCORED

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()  # noqa: S311  (Thompson sampling, not cryptography)

    def handle(self, event: Event) -> None:
        payload = _json(event)
        if not isinstance(payload.get("lead_id"), int):
            raise PoisonEvent("lead.scored needs an integer lead_id")
        outreach_attempt(
            lead_id=payload["lead_id"],
            stage=self.name,
            event_id=event.event_id,
            rng=self.rng,
            force=bool(payload.get("force")),
        )


class FeedbackStage(Stage):
    name, topic = "feedback", OUTREACH_EVENTS

    def handle(self, event: Event) -> None:
        payload = _json(event)
        with exactly_once(stage=self.name, event_id=event.event_id):
            if event.event_type.startswith("engagement."):
                if not isinstance(payload.get("outreach_id"), int) or not payload.get("event_id"):
                    raise PoisonEvent("an engagement needs outreach_id and event_id")
                engagement_apply(event=payload)


STAGES: dict[str, type[Stage]] = {stage.name: stage for stage in (ScorerStage, OutreachStage, FeedbackStage)}
