"""Lead ingest: Lightfield events from the API (in batches) and from `leads.raw` (the scorer).

Both paths upsert by lightfield_id and end in the same state: the API path stores the lead
and puts the event on `leads.raw`; the scorer stage upserts again (a no-op for API leads,
the first write for events produced straight to Kafka), scores, and emits `leads.scored`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from leads.caching import lead_metrics_invalidate
from leads.lightfield import InvalidEvent, parse_event
from leads.models import Lead
from leads.outbox import Emission, outbox_emit_many
from leads.scoring.types import LeadFacts, ScoreResult
from leads.services.leads import lead_score_changes, lead_scored_emission_of
from leads.topics import LEADS_RAW
from pipeline_whisperer.bulk import bulk_upsert
from pipeline_whisperer.exceptions import PayloadTooLarge

# What a newer event may change on an existing lead; score and status belong to the pipeline.
UPSERT_FIELDS = [*Lead.DESCRIPTIVE_FIELDS, "raw_payload", "lightfield_created_at", "updated_at"]
# What the scorer writes: the newer event's fields and the score, with the status it implies.
SCORED_UPSERT_FIELDS = [
    *UPSERT_FIELDS,
    "score", "persona", "scoring_model", "scoring_reasons", "scored_at", "failure_reason",
    "status", "status_before_snooze",
]  # fmt: skip


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


@dataclass(frozen=True)
class ScoredEvent:
    """A leads.raw event's lead fields and score, with the correlation id its lead.scored carries."""

    fields: dict[str, Any]
    result: ScoreResult
    correlation_id: str | None = None


def lead_upsert_scored_batch(*, entries: Sequence[ScoredEvent]) -> dict[str, int]:
    """Upsert leads from their events and store their scores, in one upsert and one outbox insert;
    call inside the stage's transaction; the leads' ids by lightfield_id. Entries apply in order,
    as if one by one: a newer event changes a lead's descriptive fields, and each entry emits
    `lead.scored` as it left the lead."""
    lightfield_ids = {entry.fields["lightfield_id"] for entry in entries}
    locked = Lead.objects.select_for_update().filter(lightfield_id__in=lightfield_ids).values()
    # Rows by lightfield_id, as plain values: a batch builds no model instances.
    rows: dict[str, dict[str, Any]] = {row["lightfield_id"]: _without_times(row) for row in locked}
    emitted: list[tuple[ScoredEvent, dict[str, Any]]] = []
    for entry in entries:
        fields = entry.fields
        row = rows.get(fields["lightfield_id"])
        if row is None:
            row = rows[fields["lightfield_id"]] = {**_NEW_LEAD, **fields}
        elif row["raw_payload"] != fields["raw_payload"]:
            row.update({name: fields.get(name, row[name]) for name in UPSERT_FIELDS[:-1]})
        row.update(lead_score_changes(status=row["status"], result=entry.result))
        emitted.append((entry, {name: row[name] for name in ("score", "persona", "status")}))
    ids = bulk_upsert(
        Lead,
        list(rows.values()),
        key_field="lightfield_id",
        unique_fields=["lightfield_id"],
        update_fields=SCORED_UPSERT_FIELDS,
    )
    lead_metrics_invalidate()
    outbox_emit_many(
        [
            lead_scored_emission_of(
                lead_id=ids[entry.fields["lightfield_id"]],
                lightfield_id=entry.fields["lightfield_id"],
                correlation_id=entry.correlation_id,
                **state,
            )
            for entry, state in emitted
        ]
    )
    return ids


# A new lead's pipeline fields before its first score.
_NEW_LEAD = {"status": Lead.Status.RAW, "status_before_snooze": ""}


def _without_times(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored lead's values to write back: its id and created_at stay, updated_at becomes now."""
    return {name: value for name, value in row.items() if name not in ("id", "created_at", "updated_at")}
