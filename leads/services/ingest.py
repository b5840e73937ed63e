"""Lead ingest: Lightfield events from the API (in batches) and from `leads.raw` (the scorer).

Both paths upsert by lightfield_id and end in the same state: the API path stores the lead
and puts the event on `leads.raw`; the scorer stage upserts again (a no-op for API leads,
the first write for events produced straight to Kafka), scores, and emits `leads.scored`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from leads.caching import lead_metrics_invalidate
from leads.events import LEADS_RAW
from leads.lightfield import InvalidEvent, parse_event
from leads.models import Lead
from leads.scoring.types import LeadFacts, ScoreResult
from leads.services.leads import lead_apply_score, lead_emit_scored
from leads.services.outbox import Emission, outbox_emit_many
from pipeline_whisperer.exceptions import PayloadTooLarge

# What a newer event may change on an existing lead; score and status belong to the pipeline.
UPSERT_FIELDS = [*Lead.DESCRIPTIVE_FIELDS, "raw_payload", "lightfield_created_at", "updated_at"]


@dataclass(frozen=True)
class IngestItem:
    """What happened to one event of a batch: accepted (with its lead) or refused (with why)."""

    index: int
    lightfield_id: str | None = None
    lead_id: int | None = None
    created: bool | None = None
    lead_status: str | None = None
    error: str | None = None


def lead_ingest_batch(*, events: Sequence[Any]) -> list[IngestItem]:
    """Validate each event, upsert the valid ones and queue them on `leads.raw`, all in one
    transaction; invalid events are reported by index and do not stop the others."""
    if len(events) > settings.INGEST_MAX_BATCH:
        raise PayloadTooLarge(
            f"A batch may hold at most {settings.INGEST_MAX_BATCH} events (got {len(events)}).",
            max_batch=settings.INGEST_MAX_BATCH,
        )
    refused: list[IngestItem] = []
    accepted: dict[str, dict[str, Any]] = {}  # by lightfield_id; a later duplicate in the batch wins
    indexes: list[tuple[int, str]] = []
    for index, event in enumerate(events):
        try:
            fields = parse_event(event)
        except InvalidEvent as error:
            refused.append(IngestItem(index=index, error=str(error)))
            continue
        accepted[fields["lightfield_id"]] = fields
        indexes.append((index, fields["lightfield_id"]))
    rows = _upsert(accepted) if accepted else {}
    items = refused + [
        IngestItem(
            index=index,
            lightfield_id=lightfield_id,
            lead_id=rows[lightfield_id][0],
            created=rows[lightfield_id][2],
            lead_status=rows[lightfield_id][1],
        )
        for index, lightfield_id in indexes
    ]
    return sorted(items, key=lambda item: item.index)


def _upsert(accepted: dict[str, dict[str, Any]]) -> dict[str, tuple[int, str, bool]]:
    """Upsert the leads and queue their events; returns lightfield_id -> (id, status, created)."""
    with transaction.atomic():
        existing = set(Lead.objects.filter(lightfield_id__in=accepted).values_list("lightfield_id", flat=True))
        Lead.objects.bulk_create(
            [Lead(**fields) for fields in accepted.values()],
            update_conflicts=True,
            unique_fields=["lightfield_id"],
            update_fields=UPSERT_FIELDS,
        )
        lead_metrics_invalidate()
        outbox_emit_many(
            [
                Emission(LEADS_RAW, lightfield_id, "lead.created", fields["raw_payload"])
                for lightfield_id, fields in accepted.items()
            ]
        )
        saved = Lead.objects.filter(lightfield_id__in=accepted).values_list("lightfield_id", "id", "status")
        return {lightfield_id: (pk, status, lightfield_id not in existing) for lightfield_id, pk, status in saved}


def facts_from_fields(fields: dict[str, Any]) -> LeadFacts:
    return LeadFacts(
        company_name=fields["company_name"],
        company_size=fields.get("company_size", ""),
        company_industry=fields.get("company_industry", ""),
        contact_title=fields.get("contact_title", ""),
        budget_range=fields.get("budget_range", ""),
        timeline=fields.get("timeline", ""),
        pain_points=tuple(fields.get("pain_points", ())),
    )


def lead_upsert_scored(*, fields: dict[str, Any], result: ScoreResult) -> Lead:
    """Upsert a lead from its event and store its score; call inside the stage's transaction."""
    lead, created = Lead.objects.select_for_update().get_or_create(
        lightfield_id=fields["lightfield_id"], defaults=fields
    )
    if not created and lead.raw_payload != fields["raw_payload"]:
        for name in UPSERT_FIELDS[:-1]:
            setattr(lead, name, fields.get(name, getattr(lead, name)))
        lead.save(update_fields=UPSERT_FIELDS)
    lead = lead_apply_score(lead=lead, result=result)
    lead_emit_scored(lead)
    return lead
