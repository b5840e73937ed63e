"""The Kafka side of the pipeline: the outbox relay and the consumer loop around each stage.

Offsets are committed only after the stage's database transaction committed; the stage
records each applied event id in that transaction, so a redelivered message changes nothing.
SIGTERM (via `stop`) lets the current batch finish and commit before the loop exits.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from typing import cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from leads.models import OutboxEvent
from leads.pipeline.events import Event, encode, event_from_message, outbox_event, wire_headers
from leads.pipeline.stages import DependencyDown, Outcome, Stage
from leads.topics import TOPICS, dead_letter_topic
from pipeline_whisperer.correlation import correlation_scope
from pipeline_whisperer.kafka import ensure_topics, make_consumer, make_producer
from pipeline_whisperer.locks import leadership
from pipeline_whisperer.outages import Outage, dependency_down
from pipeline_whisperer.worker_probes import WORKER_HEALTH

logger = logging.getLogger(__name__)
ALL_TOPICS = [*TOPICS, *(dead_letter_topic(topic) for topic in TOPICS)]


class StageConsumer:
    """Runs one Stage as a member of its consumer group (a class: it owns the loop's clients
    and counters)."""

    def __init__(
        self, stage: Stage, stop: threading.Event, *, batch_size: int | None = None, poll_timeout: float = 1.0
    ) -> None:
        self.stage, self.stop = stage, stop
        self.batch_size = batch_size or settings.PIPELINE_BATCH_SIZE
        self.poll_timeout = poll_timeout
        self.counts = dict.fromkeys(Outcome, 0)
        self.outage = Outage(stage.name, stop)

    def run(self) -> None:
        ensure_topics(ALL_TOPICS)
        consumer, producer = make_consumer(self.stage.name), make_producer()
        consumer.subscribe([self.stage.topic])
        logger.info("%s consuming %s", self.stage.name, self.stage.topic)
        try:
            while not self.stop.is_set():
                WORKER_HEALTH.beat(self.stage.name)
                messages = consumer.consume(num_messages=self.batch_size, timeout=self.poll_timeout)
                if messages:
                    self._process_batch(consumer, producer, messages)
                self._tick()
        finally:
            producer.flush(10)
            consumer.close()
            close_old_connections()
            logger.info("%s stopped: %s", self.stage.name, {str(outcome): n for outcome, n in self.counts.items()})

    def _process_batch(self, consumer: Consumer, producer: Producer, messages: Sequence[Message]) -> None:
        """The batch through the stage in one go; offsets committed once its transaction committed."""
        offsets: dict[tuple[str, int], int] = {}
        events: list[Event] = []
        for message in messages:
            if error := message.error():
                if error.code() != KafkaError._PARTITION_EOF:
                    logger.warning("%s consume error: %s", self.stage.name, error)
                continue
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            # The stubs allow None for produced messages; a consumed one always has its position.
            assert topic is not None and partition is not None and offset is not None  # noqa: S101  # nosec B101
            # A consumer's headers are a list of (name, bytes or None), never the dict form.
            headers = cast("list[tuple[str, bytes | None]] | None", message.headers())
            events.append(event_from_message(topic=topic, key=message.key(), value=message.value(), headers=headers))
            offsets[(topic, partition)] = offset + 1
        outcomes = self._until_applied(events)
        if outcomes is None:  # stopped during an outage: the batch is redelivered to whoever comes next
            return
        for event, outcome in zip(events, outcomes, strict=True):
            self.counts[outcome] += 1
            if outcome == Outcome.DEAD:
                self._publish_dead_letter(producer, event)
        producer.flush(10)
        if offsets:
            try:
                consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
            except KafkaException as error:  # redelivery after this is harmless: the events are recorded
                logger.warning("%s could not commit offsets: %s", self.stage.name, error)
        close_old_connections()

    def _tick(self) -> None:
        """The stage's periodic work; a dependency that is down then is waited out like a batch's."""
        try:
            self.stage.tick()
        except Exception as error:
            if not dependency_down(error):
                raise
            self.outage.wait(error)

    def _until_applied(self, events: Sequence[Event]) -> list[Outcome] | None:
        """The batch through the stage, retried with backoff while a dependency is down; None if
        the stage was stopped meanwhile. OutageGaveUp ends the loop (and the process)."""
        while True:
            try:
                outcomes = self.stage.process_batch(events)
            except DependencyDown as error:
                self.outage.wait(error)
                if self.stop.is_set():
                    return None
                continue
            self.outage.over()
            return outcomes

    def _publish_dead_letter(self, producer: Producer, event: Event) -> None:
        """The dead letter on `<topic>.dlq` for whoever watches it: the message itself, or, for one
        over PIPELINE_MAX_EVENT_BYTES (which the broker may refuse again), a reference to the copy
        the database keeps. A failed publish is logged: the database has the dead letter."""
        headers = {**event.headers, "dead_letter_stage": self.stage.name}
        value = event.value
        if len(value) > settings.PIPELINE_MAX_EVENT_BYTES:
            headers["dead_letter_body"] = "in the database (too large to republish)"
            value = encode({"event_id": event.event_id, "bytes": len(event.value), "stage": self.stage.name})
        dead = dataclasses.replace(event, topic=dead_letter_topic(event.topic), value=value, headers=headers)
        try:
            producer.produce(dead.topic, key=dead.key.encode(), value=dead.value, headers=wire_headers(dead))  # type: ignore[arg-type]  # stub wants an invariant list[str|bytes|None]
        except (KafkaException, BufferError) as error:
            logger.error(
                "%s could not publish the dead letter of %s to %s: %s",
                self.stage.name,
                event.event_id,
                dead.topic,
                error,
            )


class OutboxRelay:
    """Publishes pending outbox rows in id order with an idempotent producer; one leader at a
    time (PostgreSQL advisory lock), so one key's events keep their order."""

    def __init__(self, stop: threading.Event, *, batch_size: int = 500, idle_seconds: float = 0.2) -> None:
        self.stop, self.batch_size, self.idle_seconds = stop, batch_size, idle_seconds
        self.published = 0
        self.delivery_failed = False  # the last batch stopped at a failed delivery

    def run(self) -> None:
        """Lead and publish until stopped; a database or broker outage is waited out (leadership,
        whose lock lived on a connection the outage broke, is won again before publishing)."""
        outage = Outage("relay", self.stop)
        while not self.stop.is_set():
            try:
                self._lead_and_publish(outage)
            except Exception as error:
                if not dependency_down(error):
                    raise
                outage.wait(error)
        logger.info("relay stopped after publishing %s events", self.published)

    def _lead_and_publish(self, outage: Outage) -> None:
        with leadership("outbox-relay", self.stop) as leading:
            if not leading:
                return
            ensure_topics(ALL_TOPICS)
            producer = make_producer()
            while not self.stop.is_set():
                WORKER_HEALTH.beat("relay")
                published = self.publish_batch(producer)
                outage.over()
                if published == 0:
                    self.stop.wait(self.idle_seconds)
                if self.delivery_failed:
                    # After deliveries timed out while the brokers were away, an idempotent
                    # producer can be fenced for good (PRODUCER_FENCED on every later send): retry
                    # with a fresh one. Rows go again in order; consumers skip any duplicate.
                    producer.purge()
                    producer, self.delivery_failed = make_producer(), False
            producer.flush(10)

    def publish_batch(self, producer: Producer) -> int:
        """Publish the oldest pending rows in order; the rows the broker took are stamped, up to
        the first that failed for now (it and those behind it go again, in order). A row the
        broker refuses for good (too large, malformed) is set aside as failed, so it holds back
        nothing; staff can retry or discard it."""
        rows = list(OutboxEvent.objects.pending()[: self.batch_size])
        if not rows:
            close_old_connections()
            return 0
        outcomes: dict[int, KafkaError | None] = {}  # row id -> None when delivered, else the error

        def report_to(row_id: int) -> Callable[[KafkaError | None, Message], None]:
            def report(error: KafkaError | None, _message: Message) -> None:
                outcomes[row_id] = error

            return report

        for row in rows:
            event = outbox_event(row)
            try:
                producer.produce(
                    row.topic,
                    key=row.key.encode(),
                    value=event.value,
                    headers=wire_headers(event),  # type: ignore[arg-type]  # stub wants an invariant list[str|bytes|None]
                    on_delivery=report_to(row.pk),
                )
            except KafkaException as error:  # refused before sending, e.g. over message.max.bytes
                outcomes[row.pk] = error.args[0]
            producer.poll(0)
        producer.flush(settings.KAFKA_PUBLISH_TIMEOUT_SECONDS)
        refused = [row for row in rows if _refused_for_good(outcomes.get(row.pk))]
        waiting = [row for row in rows if row not in refused]
        delivered = [row.pk in outcomes and outcomes[row.pk] is None for row in waiting]
        first_failure = delivered.index(False) if False in delivered else len(waiting)
        done = [row.pk for row in waiting[:first_failure]]
        now = timezone.now()
        OutboxEvent.objects.filter(pk__in=done).update(published_at=now)
        _log_published(waiting[:first_failure])
        for row in refused:
            reason = str(outcomes[row.pk])
            OutboxEvent.objects.filter(pk=row.pk).update(failed_at=now, attempts=row.attempts + 1, last_error=reason)
            logger.error("relay: the broker refused %s for good (%s); set aside for staff", row.event_id, reason)
        if first_failure < len(waiting):
            failed = waiting[first_failure]
            reason = str(outcomes.get(failed.pk) or "not delivered in time")
            OutboxEvent.objects.filter(pk=failed.pk).update(attempts=failed.attempts + 1, last_error=reason)
            logger.warning("relay: delivery of %s failed (%s); it will be retried", failed.event_id, reason)
            self.delivery_failed = True
            self.stop.wait(1.0)
        self.published += len(done)
        close_old_connections()
        return len(done) + len(refused)


# What a broker answers for a message it will never take, however often it is sent.
_REFUSED_FOR_GOOD = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.INVALID_MSG,
    KafkaError.INVALID_MSG_SIZE,
    KafkaError.INVALID_RECORD,
    KafkaError.RECORD_LIST_TOO_LARGE,
}


def _refused_for_good(error: KafkaError | None) -> bool:
    return error is not None and error.code() in _REFUSED_FOR_GOOD


def _log_published(rows: list[OutboxEvent]) -> None:
    """One line per published event, under the correlation id of the request that caused it."""
    for row in rows:
        with correlation_scope(row.correlation_id):
            logger.info(
                "relay published %s %s to %s",
                row.event_type,
                row.event_id,
                row.topic,
                extra={"stage": "relay", "event_id": str(row.event_id)},
            )
