"""The pipeline's stages: what each does with a batch of events. The loops around them (the
Kafka consumer in `leads.pipeline.kafka`, the in-process bus in `leads.pipeline.inprocess`) hand
them batches, so both shapes run exactly this code.

A stage's batch is one transaction that records the batch's event ids (so a redelivery changes
nothing) with the batch's writes. A batch that fails is retried event by event, so only a
poison event is dead-lettered and the rest of its batch is applied.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from leads.dead_letters import dead_letter_record
from leads.idempotency import events_applied, events_claim
from leads.lightfield import InvalidEvent, parse_event
from leads.models import EngagementEvent, Outreach, ProcessedEvent
from leads.pipeline.events import Event
from leads.scoring.factory import configured_scorer
from leads.services.brake import brake_check
from leads.services.feedback import engagement_apply_batch
from leads.services.ingest import ScoredEvent, facts_from_fields, lead_upsert_scored_batch
from leads.services.outreach import OutreachRequest, outreach_expire_stale, outreach_schedule_batch
from leads.services.reply_classes import replies_classify
from leads.topics import LEADS_RAW, LEADS_SCORED, OUTREACH_EVENTS
from pipeline_whisperer.correlation import correlation_scope
from pipeline_whisperer.outages import dependency_down

logger = logging.getLogger(__name__)
# The longest event id the applied-event table holds; a dead letter's claim is cut to it.
_RECORDABLE_ID = ProcessedEvent._meta.get_field("event_id").max_length or 100


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    SKIPPED = "skipped"  # applied before: the redelivery changed nothing
    DEAD = "dead"  # dead-lettered


class PoisonEvent(ValueError):
    """The event can never be applied (not JSON, breaks the contract): dead-letter it at once."""


class DependencyDown(Exception):
    """A dependency the batch needs (database, mail server, broker) is unavailable: nothing is
    dead-lettered for it; the caller retries the whole batch once it is back (what was applied
    meanwhile is skipped then)."""


@dataclass
class Item:
    """One event of a batch on its way through a stage."""

    event: Event
    decoded: Any
    prepared: Any = None
    is_prepared: bool = False
    error: Exception | None = None  # what `prepare` could not do for this item (a failed send)


class Stage:
    """One stage. Subclasses say what an event means (`decode`), what to do outside any
    transaction (`prepare`: model calls, sends) and what to write (`handle`, inside the batch's
    transaction); `process_batch` owns idempotency, the event-by-event retry and dead letters."""

    name: ClassVar[str]
    topic: ClassVar[str]

    def decode(self, event: Event) -> Any:
        """The event's meaning; PoisonEvent or InvalidEvent if it can never be applied."""
        raise NotImplementedError

    def prepare(self, items: Sequence[Item]) -> None:
        """Work outside any transaction, setting each item's `prepared` (or its `error`, which
        sends that item down the event-by-event path); by default none."""

    def handle(self, items: Sequence[Item]) -> None:
        """The batch's writes, inside the transaction that records its event ids."""
        raise NotImplementedError

    def tick(self) -> None:
        """Periodic work between batches; by default none."""

    def process(self, event: Event) -> Outcome:
        return self.process_batch([event])[0]

    def process_batch(self, events: Sequence[Event]) -> list[Outcome]:
        """Apply each event once; the outcomes in the order of `events`.

        Raises DependencyDown when a dependency fails, so the caller must not move past the batch
        but retry it; an event that can never succeed is dead-lettered (once, however often it
        is redelivered).
        """
        try:
            return self._process_batch(events)
        except DependencyDown:
            raise
        except Exception as error:
            if dependency_down(error):
                raise DependencyDown(f"{type(error).__name__}: {error}") from error
            raise

    def _process_batch(self, events: Sequence[Event]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        items: dict[int, Item] = {}
        seen: set[str] = set()
        for index, event in enumerate(events):
            if event.event_id in seen:
                outcomes[index] = Outcome.SKIPPED
                continue
            seen.add(event.event_id)
            try:
                if len(event.value) > settings.PIPELINE_MAX_EVENT_BYTES:
                    raise PoisonEvent(
                        f"the event is {len(event.value):,} bytes; at most {settings.PIPELINE_MAX_EVENT_BYTES:,}"
                        " are accepted (PIPELINE_MAX_EVENT_BYTES)"
                    )
                items[index] = Item(event, self.decode(event))
            except (PoisonEvent, InvalidEvent) as error:
                outcomes[index] = self._dead(event, error, attempts=1)
        applied = events_applied(stage=self.name, event_ids=[item.event.event_id for item in items.values()])
        for index, item in list(items.items()):
            if item.event.event_id in applied:
                outcomes[index] = Outcome.SKIPPED
                del items[index]
        if items:
            outcomes.update(self._apply(items))
        for index, event in enumerate(events):
            self._log(event, outcomes[index])
        return [outcomes[index] for index in range(len(events))]

    def _apply(self, items: dict[int, Item]) -> dict[int, Outcome]:
        outcomes: dict[int, Outcome] = {}
        ready = items
        try:
            self.prepare(list(items.values()))
            for item in items.values():
                item.is_prepared = item.error is None
            ready = {index: item for index, item in items.items() if item.is_prepared}
            with transaction.atomic():
                claimed = events_claim(stage=self.name, event_ids=[item.event.event_id for item in ready.values()])
                self.handle([item for item in ready.values() if item.event.event_id in claimed])
        except Exception as error:
            if dependency_down(error):
                raise
            logger.warning("%s: a batch of %s failed (%s); retrying it event by event", self.name, len(ready), error)
            outcomes.update({index: self._apply_one(item) for index, item in ready.items()})
        else:
            for index, item in ready.items():
                outcomes[index] = Outcome.APPLIED if item.event.event_id in claimed else Outcome.SKIPPED
        for index, item in items.items():
            if index not in outcomes:
                if item.error is not None and dependency_down(item.error):
                    raise DependencyDown(f"{type(item.error).__name__}: {item.error}") from item.error
                outcomes[index] = self._apply_one(item)
        return outcomes

    def _apply_one(self, item: Item) -> Outcome:
        """One event with its retries; what prepared successfully (a mail sent) is not redone."""
        for attempt in range(1, settings.PIPELINE_MAX_ATTEMPTS + 1):
            try:
                with correlation_scope(item.event.correlation_id):
                    if not item.is_prepared:
                        item.error = None
                        self.prepare([item])
                        if item.error is not None:
                            raise item.error
                        item.is_prepared = True
                    with transaction.atomic():
                        if not events_claim(stage=self.name, event_ids=[item.event.event_id]):
                            return Outcome.SKIPPED
                        self.handle([item])
                return Outcome.APPLIED
            except (PoisonEvent, InvalidEvent) as error:
                return self._dead(item.event, error, attempts=attempt)
            except Exception as error:
                if dependency_down(error):
                    raise
                logger.warning("%s failed on %s (attempt %s): %s", self.name, item.event.event_id, attempt, error)
                if attempt == settings.PIPELINE_MAX_ATTEMPTS:
                    return self._dead(item.event, error, attempts=attempt)
                time.sleep(settings.PIPELINE_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _dead(self, event: Event, error: Exception, *, attempts: int) -> Outcome:
        """Dead-letter `event`, recorded as applied in the same transaction: a redelivery of its
        batch (after a crash or an outage) finds it done instead of dead-lettering it again."""
        reason = f"{type(error).__name__}: {error}"
        with transaction.atomic():
            if not events_claim(stage=self.name, event_ids=[event.event_id[:_RECORDABLE_ID]]):
                return Outcome.SKIPPED
            dead_letter_record(
                stage=self.name,
                topic=event.topic,
                key=event.key,
                event_id=event.event_id,
                value=event.value,
                headers={**event.headers, "event_type": event.event_type, "correlation_id": event.correlation_id},
                error=reason,
                attempts=attempts,
            )
        with correlation_scope(event.correlation_id):
            logger.error("%s dead-lettered %s after %s attempt(s): %s", self.name, event.event_id, attempts, reason)
        return Outcome.DEAD

    def _log(self, event: Event, outcome: Outcome) -> None:
        """One line per event, under the correlation id of the request that caused it."""
        if not logger.isEnabledFor(logging.INFO):
            return
        with correlation_scope(event.correlation_id):
            logger.info(
                "%s %s %s %s",
                self.name,
                outcome,
                event.event_type or "event",
                event.event_id,
                extra={"stage": self.name, "outcome": str(outcome), "event_id": event.event_id},
            )


def _json_object(event: Event) -> dict[str, Any]:
    try:
        payload = event.payload()
    except ValueError as error:
        raise PoisonEvent(f"not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise PoisonEvent("the event must be a JSON object")
    return payload


class ScorerStage(Stage):
    """leads.raw -> upsert the lead, score it, emit leads.scored."""

    name, topic = "scorer", LEADS_RAW

    def decode(self, event: Event) -> dict[str, Any]:
        return parse_event(_json_object(event))

    def prepare(self, items: Sequence[Item]) -> None:
        scorer = configured_scorer()  # may call a model: outside the transaction
        for item in items:
            item.prepared = scorer(facts_from_fields(item.decoded))

    def handle(self, items: Sequence[Item]) -> None:
        lead_upsert_scored_batch(
            entries=[ScoredEvent(item.decoded, item.prepared, item.event.correlation_id) for item in items]
        )


class OutreachStage(Stage):
    """leads.scored -> eligibility, choose a variant, render, and schedule the mail (pacing); the
    dispatch stage sends it when it is due. Scheduling is the batch's one transaction: nothing
    here talks to a mail server, so there is nothing to prepare."""

    name, topic = "outreach", LEADS_SCORED

    def __init__(self, rng: random.Random | None = None, *, clock: Callable[[], datetime] = timezone.now) -> None:
        self.rng = rng or random.Random()  # noqa: S311  (Thompson sampling, not cryptography)
        self.clock = clock  # what pacing counts from: the wall clock, or a test's

    def decode(self, event: Event) -> OutreachRequest:
        payload = _json_object(event)
        if not isinstance(payload.get("lead_id"), int):
            raise PoisonEvent("lead.scored needs an integer lead_id")
        return OutreachRequest(
            lead_id=payload["lead_id"], force=bool(payload.get("force")), correlation_id=event.correlation_id
        )

    def handle(self, items: Sequence[Item]) -> None:
        outreach_schedule_batch(requests=[item.decoded for item in items], rng=self.rng, now=self.clock())


class FeedbackStage(Stage):
    """outreach.events -> classify replies (prepare), apply engagement to outreach, lead and
    variant; closes stale outreach; checks the deliverability brake.

    The brake is checked after a batch's transaction committed (so it counts that batch's bounces
    and complaints), in `process_batch`, which both the Kafka loop and the in-process bus call
    (`tick` runs only in the Kafka loop); and with the expiry, since old sends leaving the 7-day
    window raise the rates too. A check the database failed is made again after the next batch.
    """

    name, topic = "feedback", OUTREACH_EVENTS

    def __init__(self) -> None:
        self._next_expiry = time.monotonic()
        self._brake_due = False

    def decode(self, event: Event) -> dict[str, Any] | None:
        payload = _json_object(event)
        if not event.event_type.startswith("engagement."):
            return None  # outreach.sent and the like: recorded, nothing to apply
        if not isinstance(payload.get("outreach_id"), int) or not payload.get("event_id"):
            raise PoisonEvent("an engagement needs outreach_id and event_id")
        if payload.get("bounce_type") not in (None, *Outreach.BounceType.values):
            raise PoisonEvent(f"bounce_type must be hard or soft (got {payload['bounce_type']!r})")
        return payload

    def prepare(self, items: Sequence[Item]) -> None:
        # A reply is classified here, outside the transaction: the classifier may ask a model.
        replies_classify([item.decoded for item in items if item.decoded is not None])

    def handle(self, items: Sequence[Item]) -> None:
        applied = engagement_apply_batch(events=[item.decoded for item in items if item.decoded is not None])
        if any(engagement.event_type in _BRAKE_EVENTS for engagement in applied):
            self._brake_due = True

    def process_batch(self, events: Sequence[Event]) -> list[Outcome]:
        outcomes = super().process_batch(events)
        if self._brake_due:
            self._check_brake()
        return outcomes

    def tick(self) -> None:
        if time.monotonic() < self._next_expiry:
            return
        self._next_expiry = time.monotonic() + settings.OUTREACH_EXPIRY_INTERVAL_SECONDS
        expired = outreach_expire_stale()
        if expired:
            logger.info("expired %s outreach past the attribution window", expired)
        self._check_brake()

    def _check_brake(self) -> None:
        try:
            brake_check(now=timezone.now())
        except Exception as error:
            if dependency_down(error):
                raise DependencyDown(f"{type(error).__name__}: {error}") from error
            raise
        self._brake_due = False


# What a batch must have applied for the brake to be checked after it.
_BRAKE_EVENTS = (EngagementEvent.Type.BOUNCED, EngagementEvent.Type.COMPLAINED)


STAGES: dict[str, type[Stage]] = {stage.name: stage for stage in (ScorerStage, OutreachStage, FeedbackStage)}
