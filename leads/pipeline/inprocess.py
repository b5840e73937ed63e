"""The in-process bus of the embedded default: outbox rows are handed to the stages as soon as
the transaction that wrote them commits, in the same process, in order, a topic's run of rows
as one batch.

A row is marked published once its stage has processed it (applied, skipped or dead-lettered).
Rows left pending by a process that died are delivered by `run_pipeline all` (no Kafka). After
an outreach batch, what it made due is dispatched here too (`leads.pipeline.dispatch`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import groupby

from django.db.models import F
from django.utils import timezone

from leads.models import OutboxEvent
from leads.pipeline.dispatch import dispatch_in_process
from leads.pipeline.events import outbox_event
from leads.pipeline.stages import STAGES, OutreachStage, Stage

logger = logging.getLogger(__name__)
_stages: dict[str, Stage] = {}


def _stage_for(topic: str) -> Stage | None:
    if not _stages:
        for stage_class in STAGES.values():
            stage = stage_class()
            _stages[stage.topic] = stage
    return _stages.get(topic)


def deliver(rows: Sequence[OutboxEvent]) -> int:
    """Process `rows` through their stages, a run of one topic at a time; how many were delivered.

    A run whose stage fails (the database) stays pending for the next drain, with what follows it.
    """
    still_pending = set(
        OutboxEvent.objects.pending().filter(pk__in=[row.pk for row in rows]).values_list("pk", flat=True)
    )
    delivered = 0
    for topic, run in groupby((row for row in rows if row.pk in still_pending), key=lambda row: row.topic):
        batch = list(run)
        stage = _stage_for(topic)
        if stage is not None:
            try:
                stage.process_batch([outbox_event(row) for row in batch])
            except Exception:  # the database failed: leave the rows pending for the next drain
                logger.exception(
                    "in-process delivery of %s %s event(s) failed; they stay in the outbox", len(batch), topic
                )
                return delivered
        OutboxEvent.objects.filter(pk__in=[row.pk for row in batch]).update(
            published_at=timezone.now(), attempts=F("attempts") + 1
        )
        delivered += len(batch)
        if isinstance(stage, OutreachStage):  # its batch committed: send what it made due
            dispatch_in_process()
    return delivered


def drain(*, limit: int = 500) -> int:
    """Deliver the oldest `limit` pending rows (what a stopped process left behind)."""
    return deliver(list(OutboxEvent.objects.pending()[:limit]))
