"""The in-process bus of the embedded default: outbox rows are handed to the stages as soon
as the transaction that wrote them commits, in the same process, in order.

A row is marked published once its stage has processed it (applied, skipped or dead-lettered).
Rows left pending by a process that died are delivered by `run_pipeline all` (no Kafka).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from django.utils import timezone

from leads.models import OutboxEvent
from leads.services.outbox import outbox_event
from leads.stages import FeedbackStage, OutreachStage, ScorerStage, Stage

logger = logging.getLogger(__name__)
_stages: dict[str, Stage] = {}


def _stage_for(topic: str) -> Stage | None:
    if not _stages:
        for stage in (ScorerStage(), OutreachStage(), FeedbackStage()):
            _stages[stage.topic] = stage
    return _stages.get(topic)


def deliver_outbox(event_ids: Sequence[uuid.UUID] | None = None, *, limit: int = 500) -> int:
    """Process pending outbox rows (the given ones, or the oldest `limit`) through their stages."""
    rows = OutboxEvent.objects.filter(published_at__isnull=True).order_by("id")
    rows = rows.filter(event_id__in=event_ids) if event_ids is not None else rows[:limit]
    delivered = 0
    for row in rows:
        stage = _stage_for(row.topic)
        if stage is not None:
            try:
                stage.process(outbox_event(row))
            except Exception:  # the database failed: leave the row pending for the next drain
                logger.exception("in-process delivery of %s failed; it stays in the outbox", row.event_id)
                return delivered
        OutboxEvent.objects.filter(pk=row.pk).update(published_at=timezone.now(), attempts=row.attempts + 1)
        delivered += 1
    return delivered
